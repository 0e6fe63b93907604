"""The paper's experiments as plans of training runs, and their results as markdown tables.

`plan_tables(name, data_root, options, out)` lists, per table, the runs (model, initial weights,
train/test files and their sizes) that the table needs; `run_plan` trains and tests each run once
(skipping runs whose `result.json` exists and resuming interrupted ones, so the command can simply
be started again) and `table_markdown` prints our figure, the paper's and the difference side by
side (the paper's numbers are in `ap10k.paper`).

How each table is run, as the paper ran it (± is over the paper's three splits):

- table3: five models with and without ImageNet weights on the official splits 1–3.
- table4: HRNet-w32 initialised from a COCO human-pose checkpoint (`--coco-checkpoint`), one
  run of `epochs` per split, evaluated on the test file after epochs 20, 30, 40 and 210.
- table5/6/7 (Bovidae / Canidae / Felidae): for split N, train on split N's training images of the
  family minus one held-out species (images showing it are dropped), test on split N's test images
  of every species of the family, one AP per species. Table 6 uses the paper's dog, fox and wolf;
  `include_arctic_fox` adds the fourth Canidae species to training and rows.
- table8: train on split N's Bovidae (or Cercopithecidae) training images, test on split N's test
  images of the family itself and of Cervidae, Equidae, Hominidae (Hominidae); species AP is the
  per-category AP of those files.
- table9: for the paper's six species, Generalisation is the Bovidae model of table8 tested on
  the species; Few-Shot fine-tunes that model on `few_shot_k` (20) of the species' split-N
  training images (chosen with the split index as seed); Transfer fine-tunes it on all of them.
  All three test on the species' split-N test images.
- table10: Animal-Pose ↔ AP-10K (direct, fine-tuned, trained and tested on each), scored in
  AP-10K's 17-keypoint space on the 16 shared keypoints.

Data layout (the official release): `DATA_ROOT/annotations/ap10k-{train,val,test}-split{1,2,3}
.json` and `DATA_ROOT/data/`. Derived files are written once under `OUT/splits/split<N>/`.
Table 10 also needs Animal-Pose in the same layout: `ANIMALPOSE_ROOT/annotations/animalpose-
{train,val,test}.json` (its own 20 keypoints) and `ANIMALPOSE_ROOT/data/`.

ImageNet pretraining: `--pretrained-dir DIR` with `<model>.pth` per model (torchvision/timm layout,
e.g. resnet50.pth, hrnet_w32.pth); a model without a file is trained from scratch and the table
says so.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ap10k import paper, taxonomy
from ap10k.atomic import atomic_path, write_text_atomic
from ap10k.errors import AP10KError

TABLES = ("table3", "table4", "table5", "table6", "table7", "table8", "table9", "table10")
TABLE3_MODELS = ("resnet50", "resnet101", "hrnet_w32", "hrnet_w48", "hourglass52")
MODEL_TITLES = {"resnet50": "SimpleBaseline ResNet-50", "resnet101": "SimpleBaseline ResNet-101",
                "hrnet_w32": "HRNet-w32", "hrnet_w48": "HRNet-w48", "hourglass52": "Hourglass"}
WITHIN_TABLES = {"table5": "Bovidae", "table6": "Canidae", "table7": "Felidae"}
TABLE4_EPOCHS = tuple(paper.TABLE4)  # 20, 30, 40, 210
ACROSS = (("Bovidae", ("Cervidae", "Equidae", "Hominidae")), ("Cercopithecidae", ("Hominidae",)))
Figure = paper.Figure


@dataclass
class ExperimentOptions:
    """Knobs shared by every run of a table; defaults are the paper's settings."""

    epochs: int = 210
    batch_size: int = 64
    workers: int = 4
    device: str = "auto"
    input_size: int = 256
    repeats: int = 3  # the official splits 1..repeats
    model: str = "hrnet_w32"  # the model of Tables 4–10
    models: tuple[str, ...] = TABLE3_MODELS  # Table 3's rows
    pretrained_dir: str | None = None
    animalpose_root: str | None = None
    coco_checkpoint: str | None = None  # Table 4's initial weights (mmpose COCO HRNet-w32)
    trust_checkpoint: bool = False  # unpickle the COCO checkpoint fully (trusted files only)
    include_arctic_fox: bool = False  # Table 6 with the fourth Canidae species
    few_shot_k: int = 20
    table4_epochs: tuple[int, ...] = TABLE4_EPOCHS  # tests after these epochs (and the last)
    val_every: int = 10


@dataclass
class Run:
    """One training + testing job. `tests` maps a column label to (annotation file, images);
    `sizes` maps "train" and each test label to (images, instances); `eval_epochs`, when set,
    asks for a test after each of those epochs (Table 4) instead of once with the best model."""

    key: str  # unique folder name under OUT/runs
    table: str
    row: str
    column: str
    repeat: int
    model: str
    pretrained: str | None  # weights file, or "run:<key>" to start from another run
    train: str
    images: str
    val: str | None
    tests: dict[str, tuple[str, str]] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    eval_epochs: tuple[int, ...] = ()


def _ap10k_files(root: Path, split: int) -> dict[str, str]:
    files = {p: root / "annotations" / f"ap10k-{p}-split{split}.json"
             for p in ("train", "val", "test")}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise AP10KError(f"{missing[0]}: not found (expected the official AP-10K layout "
                         f"DATA_ROOT/annotations/ap10k-{{train,val,test}}-split{{1,2,3}}.json)")
    return {k: str(v) for k, v in files.items()}


def _pretrained(opts: ExperimentOptions, model: str) -> str | None:
    if opts.pretrained_dir is None:
        return None
    path = Path(opts.pretrained_dir) / f"{model}.pth"
    return str(path) if path.is_file() else None


_SIZE_CACHE: dict[str, tuple[int, int]] = {}


def _size(path: str) -> tuple[int, int]:
    """(images, instances) of an annotation file, read once per process."""
    if path not in _SIZE_CACHE:
        from ap10k.dataset import CocoDataset

        ds = CocoDataset.load(path)
        _SIZE_CACHE[path] = (len(ds.images), len(ds.annotations))
    return _SIZE_CACHE[path]


class _Split:
    """One official split's files, and the derived train/test files written under
    OUT/splits/split<N>/ (once: an existing file is kept, so runs in progress see no change)."""

    def __init__(self, root: Path, out: Path, split: int) -> None:
        self.split = split
        self.files = _ap10k_files(root, split)
        self.folder = out / "splits" / f"split{split}"
        self._parts: dict[str, Any] = {}

    def part(self, name: str) -> Any:
        """The official `train`, `val` or `test` file of this split, loaded once."""
        if name not in self._parts:
            from ap10k.dataset import CocoDataset

            self._parts[name] = CocoDataset.load(self.files[name])
        return self._parts[name]

    def write(self, stem: str, ds: Any) -> tuple[str, tuple[int, int]]:
        """Save a derived file (unless present) and return its path and size."""
        path = self.folder / f"{stem}.json"
        if not path.is_file():
            ds.save(path)
        return str(path), (len(ds.images), len(ds.annotations))

    def species_test(self, name: str) -> tuple[str, tuple[int, int]] | None:
        """This split's test images of one species (None when it has none)."""
        ds = self.part("test").filter_species([taxonomy.species_by_name(name).id])
        return self.write(f"test-{taxonomy.slug(name)}", ds) if ds.images else None

    def family_test(self, family: str) -> tuple[str, tuple[int, int]] | None:
        """This split's test images of one family (None when it has none)."""
        ds = self.part("test").filter_family(family)
        return self.write(f"test-{taxonomy.slug(family)}", ds) if ds.images else None


def within_species(name: str, opts: ExperimentOptions) -> tuple[str, ...]:
    """The species of a within-family table in the paper's column order."""
    species = paper.WITHIN[WITHIN_TABLES[name]][0]
    if name == "table6" and opts.include_arctic_fox:
        species = ("arctic fox", *species)
    return species


def _tag(opts: ExperimentOptions) -> tuple[str, str | None]:
    weights = _pretrained(opts, opts.model)
    return f"{opts.model}-{'imagenet' if weights else 'scratch'}", weights


def _plan_table3(root: Path, opts: ExperimentOptions, images: str) -> list[Run]:
    runs = []
    for split in range(1, opts.repeats + 1):
        files = _ap10k_files(root, split)
        sizes = {"train": _size(files["train"]), "test": _size(files["test"])}
        for model in opts.models:
            for pre in (False, True):
                weights = _pretrained(opts, model) if pre else None
                if pre and weights is None:
                    continue
                runs.append(Run(
                    key=f"{model}-{'imagenet' if pre else 'scratch'}-split{split}",
                    table="table3", row=model, column="pretrained" if pre else "scratch",
                    repeat=split, model=model, pretrained=weights, train=files["train"],
                    images=images, val=files["val"], tests={"test": (files["test"], images)},
                    sizes=sizes))
    return runs


def _plan_table4(root: Path, opts: ExperimentOptions, images: str) -> list[Run]:
    if opts.coco_checkpoint is None:
        raise AP10KError("table4 needs --coco-checkpoint PATH (an HRNet-w32 COCO human-pose "
                         "checkpoint, e.g. mmpose's hrnet_w32_coco_256x192)")
    if not Path(opts.coco_checkpoint).is_file():
        raise AP10KError(f"{opts.coco_checkpoint}: COCO checkpoint not found")
    epochs = tuple(sorted({e for e in opts.table4_epochs if 1 <= e < opts.epochs})) + (
        opts.epochs,)
    runs = []
    for split in range(1, opts.repeats + 1):
        files = _ap10k_files(root, split)
        runs.append(Run(
            key=f"{opts.model}-coco-split{split}", table="table4", row="coco", column="",
            repeat=split, model=opts.model, pretrained=f"coco:{opts.coco_checkpoint}",
            train=files["train"], images=images, val=files["val"],
            tests={"test": (files["test"], images)},
            sizes={"train": _size(files["train"]), "test": _size(files["test"])},
            eval_epochs=epochs))
    return runs


def _plan_within(name: str, root: Path, out: Path, opts: ExperimentOptions, images: str
                 ) -> list[Run]:
    family = WITHIN_TABLES[name]
    species = within_species(name, opts)
    ids = {s: taxonomy.species_by_name(s).id for s in species}
    tag, weights = _tag(opts)
    runs = []
    for split in range(1, opts.repeats + 1):
        sp = _Split(root, out, split)
        tests = {s: t for s in species if (t := sp.species_test(s)) is not None}
        train_all = sp.part("train")
        for held in species:
            others = [ids[s] for s in species if s != held]
            held_images = {a.image_id for a in train_all.annotations if a.category_id == ids[held]}
            train = train_all.filter_species(others).without_images(held_images)
            if not train.images:
                raise AP10KError(f"{sp.files['train']}: no training images of {family} "
                                 f"without {held}")
            group = "-".join(taxonomy.slug(s) for s in species) if name == "table6" else ""
            stem = f"{name}-without-{taxonomy.slug(held)}" + (f"-of-{group}" if group else "")
            train_file, train_size = sp.write(stem, train)
            runs.append(Run(
                key=f"{tag}-{stem}-split{split}", table=name, row=held, column="",
                repeat=split, model=opts.model, pretrained=weights, train=train_file,
                images=images, val=None, tests={s: (f, images) for s, (f, _) in tests.items()},
                sizes={"train": train_size, **{s: n for s, (_, n) in tests.items()}}))
    return runs


def _family_run(sp: _Split, train_family: str, test_families: tuple[str, ...], table: str,
                opts: ExperimentOptions, images: str) -> Run:
    """Train on one family's split-N training images; test on its own and other families'."""
    tag, weights = _tag(opts)
    train = sp.part("train").filter_family(train_family)
    if not train.images:
        raise AP10KError(f"{sp.files['train']}: no training images of {train_family}")
    train_file, train_size = sp.write(f"train-{taxonomy.slug(train_family)}", train)
    tests = {f: t for f in (train_family, *test_families) if (t := sp.family_test(f)) is not None}
    return Run(key=f"{tag}-train-{taxonomy.slug(train_family)}-split{sp.split}", table=table,
               row=train_family, column="", repeat=sp.split, model=opts.model,
               pretrained=weights, train=train_file, images=images, val=None,
               tests={f: (p, images) for f, (p, _) in tests.items()},
               sizes={"train": train_size, **{f: n for f, (_, n) in tests.items()}})


def _plan_table8(root: Path, out: Path, opts: ExperimentOptions, images: str) -> list[Run]:
    runs = []
    for split in range(1, opts.repeats + 1):
        sp = _Split(root, out, split)
        runs += [_family_run(sp, fam, tests, "table8", opts, images) for fam, tests in ACROSS]
    return runs


def _plan_table9(root: Path, out: Path, opts: ExperimentOptions, images: str) -> list[Run]:
    runs = []
    for split in range(1, opts.repeats + 1):
        sp = _Split(root, out, split)
        base_run = _family_run(sp, *ACROSS[0], "table9", opts, images)
        base_run.row = "generalisation"
        runs.append(base_run)
        for name in paper.TABLE9:
            sid = taxonomy.species_by_name(name).id
            test = sp.species_test(name)
            own = sp.part("train").filter_species([sid])
            if test is None or not own.images:
                raise AP10KError(f"split {split}: species {name} needs training and test images "
                                 f"({sp.files['train']}, {sp.files['test']})")
            ids = sorted(im.id for im in own.images)
            if len(ids) < opts.few_shot_k:
                raise AP10KError(f"{sp.files['train']}: species {name} has {len(ids)} training "
                                 f"images, fewer than the {opts.few_shot_k} of few-shot")
            # the split index seeds the choice, so the three splits see different k images
            order = np.random.default_rng([split, sid]).permutation(len(ids))
            few = own.subset(ids[j] for j in order[:opts.few_shot_k])
            for row, ds, suffix in (("few-shot", few, f"k{opts.few_shot_k}"),
                                    ("transfer", own, "all")):
                train_file, train_size = sp.write(f"finetune-{taxonomy.slug(name)}-{suffix}", ds)
                runs.append(Run(
                    key=f"{base_run.key}-ft-{taxonomy.slug(name)}-{suffix}", table="table9",
                    row=row, column=name, repeat=split, model=opts.model,
                    pretrained=f"run:{base_run.key}", train=train_file, images=images, val=None,
                    tests={name: (test[0], images)},
                    sizes={"train": train_size, name: test[1]}))
    return runs


def _plan_table10(root: Path, opts: ExperimentOptions, images: str) -> list[Run]:
    if opts.animalpose_root is None:
        raise AP10KError("table10 needs --animalpose-root DIR (annotations/animalpose-{train,"
                         "val,test}.json and data/)")
    ap_root = Path(opts.animalpose_root)
    ap_files = {p: str(ap_root / "annotations" / f"animalpose-{p}.json")
                for p in ("train", "val", "test")}
    for f in ap_files.values():
        if not Path(f).is_file():
            raise AP10KError(f"{f}: not found (Animal-Pose in the AP-10K layout)")
    ap_images = str(ap_root / "data")
    tag, weights = _tag(opts)
    runs: list[Run] = []
    for split in range(1, opts.repeats + 1):
        files = _ap10k_files(root, split)
        ap10k_test = (files["test"], images)
        ap_test = (ap_files["test"], ap_images)
        on_ap10k = f"{tag}-ap10k-split{split}"
        on_ap = f"{tag}-animalpose-split{split}"
        sizes = {"ap10k": _size(files["test"]), "animalpose": _size(ap_files["test"])}
        both = {"ap10k": ap10k_test, "animalpose": ap_test}
        runs += [
            Run(on_ap10k, "table10", "ap10k", "", split, opts.model, weights, files["train"],
                images, files["val"], both, {"train": _size(files["train"]), **sizes}),
            Run(on_ap, "table10", "animalpose", "", split, opts.model, weights,
                ap_files["train"], ap_images, ap_files["val"], both,
                {"train": _size(ap_files["train"]), **sizes}),
            Run(f"{on_ap10k}-ft-animalpose", "table10", "ap10k→animalpose", "", split,
                opts.model, f"run:{on_ap10k}", ap_files["train"], ap_images, ap_files["val"],
                {"animalpose": ap_test},
                {"train": _size(ap_files["train"]), "animalpose": sizes["animalpose"]}),
            Run(f"{on_ap}-ft-ap10k", "table10", "animalpose→ap10k", "", split, opts.model,
                f"run:{on_ap}", files["train"], images, files["val"], {"ap10k": ap10k_test},
                {"train": _size(files["train"]), "ap10k": sizes["ap10k"]}),
        ]
    return runs


def plan_tables(name: str, data_root: str | os.PathLike[str], opts: ExperimentOptions,
                out: str | os.PathLike[str]) -> dict[str, list[Run]]:
    """The runs of each table asked for (`all`: every table whose inputs were given; table4
    needs a COCO checkpoint and table10 Animal-Pose). Derived split files are written."""
    root, out = Path(data_root), Path(out)
    images = str(root / "data")
    if name == "all":
        names = [t for t in TABLES
                 if not (t == "table4" and opts.coco_checkpoint is None)
                 and not (t == "table10" and opts.animalpose_root is None)]
        return {t: plan_tables(t, root, opts, out)[t] for t in names}
    if name not in TABLES:
        raise AP10KError(f"unknown experiment {name!r}; choose one of {', '.join(TABLES)}, all")
    if opts.few_shot_k < 1:
        raise AP10KError("--few-shot-k must be ≥ 1")
    if name == "table3":
        runs = _plan_table3(root, opts, images)
    elif name == "table4":
        runs = _plan_table4(root, opts, images)
    elif name in WITHIN_TABLES:
        runs = _plan_within(name, root, out, opts, images)
    elif name == "table8":
        runs = _plan_table8(root, out, opts, images)
    elif name == "table9":
        runs = _plan_table9(root, out, opts, images)
    else:
        runs = _plan_table10(root, opts, images)
    return {name: runs}


def plan(name: str, data_root: str | os.PathLike[str], opts: ExperimentOptions,
         out: str | os.PathLike[str]) -> list[Run]:
    """Every run the tables need, once (table9's Generalisation run is table8's Bovidae run)."""
    runs: dict[str, Run] = {}
    for table_runs in plan_tables(name, data_root, opts, out).values():
        for r in table_runs:
            runs.setdefault(r.key, r)
    return list(runs.values())


def describe(runs: list[Run], opts: ExperimentOptions) -> str:
    """The plan as text: one line per training run, with its train/test sizes."""
    def size(label: str, r: Run) -> str:
        n = r.sizes.get(label)
        return f" ({n[0]} images, {n[1]} instances)" if n else ""

    lines = [f"{len(runs)} training runs of {opts.epochs} epochs, batch {opts.batch_size}, "
             f"input {opts.input_size}:"]
    for r in runs:
        pre = r.pretrained or "scratch"
        tests = "; ".join(f"{k}={Path(v[0]).name}{size(k, r)}" for k, v in r.tests.items())
        at = (f"; tested after epochs {', '.join(map(str, r.eval_epochs))}"
              if r.eval_epochs else "")
        lines.append(f"  {r.key}: {r.model} from {pre}; train {Path(r.train).name}"
                     f"{size('train', r)}{'; val ' + Path(r.val).name if r.val else ''}; "
                     f"test {tests}{at}")
    return "\n".join(lines)


def _converted(path: str, cache: Path) -> str:
    """An annotation file in AP-10K's 17 keypoints (Animal-Pose files, recognised by their
    `animalpose-` name, are converted once into OUT/converted)."""
    if not Path(path).name.startswith("animalpose"):
        return path
    from ap10k.animalpose import animalpose_to_ap10k
    from ap10k.dataset import CocoDataset

    target = cache / f"{Path(path).stem}-ap10k17.json"
    if not target.is_file():
        animalpose_to_ap10k(CocoDataset.load(path)).save(target)
    return str(target)


def _initial_weights(run: Run, opts: ExperimentOptions, out: Path) -> str | None:
    """The weights file a run starts from: another run's best (or last) checkpoint, or a COCO
    checkpoint re-saved as a plain tensor file (so training never unpickles anything else)."""
    pre = run.pretrained
    if pre is None:
        return None
    if pre.startswith("run:"):
        best = out / "runs" / pre[4:] / "best.pt"
        return str(best if best.is_file() else best.with_name("last.pt"))
    if pre.startswith("coco:"):
        import torch

        from ap10k.models.pretrained import read_state_dict

        source = Path(pre[5:])
        target = out / "converted" / f"{source.stem}-tensors.pth"
        if not target.is_file():
            state = read_state_dict(source, trust=opts.trust_checkpoint)
            with atomic_path(target) as tmp:
                torch.save(state, tmp)
        return str(target)
    return pre


def _test(ckpt: Path, tests: dict[str, tuple[str, str]], opts: ExperimentOptions
          ) -> dict[str, Any]:
    """AP, the summary stats and per-species AP of one checkpoint on each test file."""
    from ap10k.cocoeval import evaluate
    from ap10k.dataset import CocoDataset
    from ap10k.inference import load_checkpoint, predict_samples
    from ap10k.pipeline import samples_from_dataset

    model, pipe, _ = load_checkpoint(ckpt, "cuda" if _cuda(opts) else "cpu")
    out: dict[str, Any] = {"AP": {}, "stats": {}, "per_category": {}, "checkpoint": str(ckpt)}
    for label, (f, imgs) in tests.items():
        gt = CocoDataset.load(f)
        results = predict_samples(model, samples_from_dataset(gt, imgs, require_keypoints=False),
                                  pipe, batch_size=64, flip_test=True, workers=opts.workers)
        res = evaluate(gt, results, warn=False)
        out["AP"][label] = res.stats["AP"]
        out["stats"][label] = res.stats
        out["per_category"][label] = {str(c): ap for c, ap in res.per_category.items()}
    return out


def run_one(run: Run, opts: ExperimentOptions, out: Path, progress: bool = True
            ) -> dict[str, Any]:
    """Train (or resume) one run and test it; returns {"AP": {label: AP}, "stats": ...,
    "per_category": ...}. With `eval_epochs` the labels are "epoch <n>" and each is the test
    of the checkpoint saved after that epoch (kept as epoch<n>.pt)."""
    from ap10k.pipeline import PipelineConfig
    from ap10k.train import TrainConfig, train

    folder = out / "runs" / run.key
    result_file = folder / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    cache = out / "converted"
    tests = {label: (_converted(f, cache), imgs) for label, (f, imgs) in run.tests.items()}
    cfg = TrainConfig(model=run.model, pretrained=_initial_weights(run, opts, out),
                      train=_converted(run.train, cache), images=run.images,
                      val=_converted(run.val, cache) if run.val else None,
                      out=str(folder), epochs=opts.epochs, batch_size=opts.batch_size,
                      workers=opts.workers, device=opts.device, seed=run.repeat,
                      val_every=opts.val_every,
                      pipeline=PipelineConfig(input_size=opts.input_size,
                                              heatmap_size=opts.input_size // 4))
    if not run.eval_epochs:
        train(cfg, resume=(folder / "last.pt").is_file(), progress=progress)
        best = folder / "best.pt"
        result = _test(best if best.is_file() else folder / "last.pt", tests, opts)
    else:
        result = {"AP": {}, "stats": {}, "per_category": {}}
        for epoch in run.eval_epochs:
            snapshot = folder / f"epoch{epoch}.pt"
            if not snapshot.is_file():
                _train_until(cfg, folder, epoch, progress)
                shutil.copyfile(folder / "last.pt", snapshot)
            part = _test(snapshot, tests, opts)
            for key in ("AP", "stats", "per_category"):
                result[key][f"epoch {epoch}"] = part[key]["test"]
    write_text_atomic(result_file, json.dumps(result) + "\n")
    return result


def _train_until(cfg: Any, folder: Path, epoch: int, progress: bool) -> None:
    """Continue one run (same schedule) until `epoch` is done."""
    import torch

    from ap10k.train import train

    last = folder / "last.pt"
    if last.is_file():
        done = torch.load(last, map_location="cpu", weights_only=False)["epoch"]
        if done > epoch:
            raise AP10KError(f"{last}: is at epoch {done}, past {epoch}, and no epoch{epoch}.pt "
                             f"was kept; delete {folder} to run it again")
    train(cfg, resume=last.is_file(), progress=progress, stop_after=epoch)


def _cuda(opts: ExperimentOptions) -> bool:
    import torch

    return opts.device == "cuda" or (opts.device == "auto" and torch.cuda.is_available())


# ------------------------------------------------------------------ tables
def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _compare(values: list[float], published: Figure | float | None) -> str:
    """`ours | paper | difference` cells (difference of the means, ours − paper)."""
    ours = _fmt(values)
    if published is None:
        return f"{ours} | — | —"
    mean, std = published if isinstance(published, tuple) else (published, None)
    shown = f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"
    diff = f"{statistics.mean(values) - mean:+.3f}" if values else "—"
    return f"{ours} | {shown} | {diff}"


HEADER = "| ours | paper | difference |"


def _ap(results: dict[str, Any], r: Run, label: str) -> float | None:
    return results.get(r.key, {}).get("AP", {}).get(label)


def _species_ap(results: dict[str, Any], r: Run, label: str, name: str) -> float | None:
    per = results.get(r.key, {}).get("per_category", {}).get(label, {})
    ap = per.get(str(taxonomy.species_by_name(name).id))
    return None if ap is None or ap < 0 else ap


def _values(xs: list[float | None]) -> list[float]:
    """The figures that exist (COCO's -1 means no ground truth in that area range)."""
    return [x for x in xs if x is not None and x >= 0]


def table_markdown(name: str, runs: list[Run], results: dict[str, dict[str, Any]],
                   opts: ExperimentOptions) -> str:
    """One table as markdown: ours (mean ± std over the splits done), the paper's figure and the
    difference of the means, one line per figure."""
    done = [r for r in runs if r.key in results]
    n = len({r.repeat for r in done})
    head = f"## {name} ({n} of {opts.repeats} splits done, {opts.epochs} epochs)\n\n"
    lines: list[str] = []
    if name == "table3":
        lines = ["| model | initialisation " + HEADER, "|---|---|---|---|---|"]
        for model in opts.models:
            published = paper.TABLE3.get(model, (None, None))
            for col, title, pub in (("scratch", "scratch", published[0]),
                                    ("pretrained", "ImageNet", published[1])):
                mine = [r for r in done if r.row == model and r.column == col]
                vals = _values([_ap(results, r, "test") for r in mine])
                if col == "pretrained" and not any(r.row == model and r.column == col
                                                   for r in runs):
                    title = "ImageNet (no weights file: not run)"
                lines.append(f"| {MODEL_TITLES.get(model, model)} | {title} | "
                             f"{_compare(vals, pub)} |")
    elif name == "table4":
        lines = ["| epochs | metric " + HEADER, "|---|---|---|---|---|"]
        for epoch in runs[0].eval_epochs if runs else ():
            for i, stat in enumerate(paper.TABLE4_STATS):
                vals = _values([results.get(r.key, {}).get("stats", {}).get(f"epoch {epoch}",
                                                                             {}).get(stat)
                                for r in done])
                pub = paper.TABLE4[epoch][i] if epoch in paper.TABLE4 else None
                lines.append(f"| {epoch} | {stat} | {_compare(vals, pub)} |")
    elif name in WITHIN_TABLES:
        lines = _within_lines(name, runs, done, results, opts)
    elif name == "table8":
        lines = ["| train family | tested on " + HEADER, "|---|---|---|---|---|"]
        for family, tests in ACROSS:
            mine = [r for r in done if r.row == family]
            for test in (family, *tests):
                pub_fam, pub_species = paper.TABLE8.get((family, test), (None, {}))
                if test == family:
                    pub_fam = paper.TABLE8_OWN.get(family)
                vals = _values([_ap(results, r, test) for r in mine])
                lines.append(f"| {family} | {test} (family) | {_compare(vals, pub_fam)} |")
                for sid in taxonomy.species_of_family(test):
                    sp = taxonomy.species(sid).name
                    vals = _values([_species_ap(results, r, test, sp) for r in mine])
                    if vals or sp in pub_species:
                        lines.append(f"| {family} | {sp} | "
                                     f"{_compare(vals, pub_species.get(sp))} |")
    elif name == "table9":
        lines = ["| species | setting " + HEADER, "|---|---|---|---|---|"]
        base = [r for r in done if r.row == "generalisation"]
        for sp, published in paper.TABLE9.items():
            family = taxonomy.family_of(taxonomy.species_by_name(sp).id)
            gen = _values([_species_ap(results, r, family, sp) for r in base])
            lines.append(f"| {sp} | Generalisation | {_compare(gen, published[0])} |")
            for i, (row, title) in enumerate((("few-shot", f"Few-shot ({opts.few_shot_k} "
                                                           "images)"),
                                              ("transfer", "Transfer")), start=1):
                vals = _values([_ap(results, r, sp) for r in done
                                if r.row == row and r.column == sp])
                lines.append(f"| {sp} | {title} | {_compare(vals, published[i])} |")
    else:
        lines = ["| setting | tested on " + HEADER, "|---|---|---|---|---|"]
        settings = {"direct": (("animalpose", "ap10k"), ("ap10k", "animalpose")),
                    "finetune": (("animalpose→ap10k", "ap10k"), ("ap10k→animalpose",
                                                                "animalpose")),
                    "train-test": (("ap10k", "ap10k"), ("animalpose", "animalpose"))}
        for setting, cols in settings.items():
            for i, (row, test) in enumerate(cols):
                vals = _values([_ap(results, r, test) for r in done if r.row == row])
                lines.append(f"| {setting} (trained {row}) | {test} | "
                             f"{_compare(vals, paper.TABLE10[setting][i])} |")
        lines.append("")
        lines.append("Ours is scored in AP-10K's 17-keypoint space (the 16 keypoints both sets "
                     "share, AP-10K sigmas); the paper does not say how it scored Animal-Pose, so "
                     "the Animal-Pose columns are not strictly comparable.")
    return head + "\n".join(lines) + "\n"


def _within_lines(name: str, runs: list[Run], done: list[Run], results: dict[str, Any],
                  opts: ExperimentOptions) -> list[str]:
    """Tables 5–7: per held-out species, AP on each species' test images and the average over
    the trained ones (mean of the species, ± their population std, as the paper's Average)."""
    family = WITHIN_TABLES[name]
    columns, published = paper.WITHIN[family]
    species = within_species(name, opts)
    lines = [f"| held out ({family}) | tested on " + HEADER, "|---|---|---|---|---|"]
    for held in species:
        mine = [r for r in done if r.row == held]
        pub_row = published.get(held) if tuple(species) == columns else None
        means = []
        for col, sp in enumerate(species):
            vals = _values([_ap(results, r, sp) for r in mine])
            if vals and sp != held:
                means.append(statistics.mean(vals))
            pub = pub_row[col] if pub_row else None
            mark = " (held out)" if sp == held else ""
            lines.append(f"| {held} | {sp}{mark} | {_compare(vals, pub)} |")
        avg = (f"{statistics.mean(means):.3f} ± {statistics.pstdev(means):.3f}"
               if means else "—")
        pub_avg = pub_row[-1] if pub_row else None
        diff = (f"{statistics.mean(means) - pub_avg[0]:+.3f}" if means and pub_avg else "—")
        shown = f"{pub_avg[0]:.3f} ± {pub_avg[1]:.3f}" if pub_avg else "—"
        lines.append(f"| {held} | average of the trained species | {avg} | {shown} | {diff} |")
    if not any(r.table == name for r in runs):
        lines.append("(no runs)")
    return lines


def run_plan(tables: dict[str, list[Run]], opts: ExperimentOptions,
             out: str | os.PathLike[str], progress: bool = True) -> dict[str, str]:
    """Run every job once (fine-tunes after their sources) and write OUT/<table>.md per table."""
    out = Path(out)
    unique: dict[str, Run] = {}
    for runs in tables.values():
        for r in runs:
            unique.setdefault(r.key, r)
    ordered = sorted(unique.values(), key=lambda r: (r.pretrained or "").startswith("run:"))
    results: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(ordered, start=1):
        if progress:
            print(f"[{i}/{len(ordered)}] {r.key}", flush=True)
        results[r.key] = run_one(r, opts, out, progress)
    written = {}
    for name, runs in tables.items():
        md = table_markdown(name, runs, results, opts)
        write_text_atomic(out / f"{name}.md", md)
        written[name] = md
    return written
