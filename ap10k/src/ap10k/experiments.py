"""The paper's experiments as plans of training runs, and their results as markdown tables.

`plan(name, data_root, options)` lists the runs (model, pretraining, train/val/test files) that a
table needs; `run_plan` trains and tests each one (skipping runs whose `result.json` exists and
resuming interrupted ones, so the command can simply be started again); `table_markdown` renders
mean ± std over splits (or repeats) in the paper's layout with the published numbers alongside.

Data layout (the official release): `DATA_ROOT/annotations/ap10k-{train,val,test}-split{1,2,3}
.json` and `DATA_ROOT/data/`. Tables 5–9 draw their splits from the union of split 1's files with
`ap10k.splits` (seeds 0, 1, 2 for the three repeats). Table 10 also needs Animal-Pose in the same
layout: `ANIMALPOSE_ROOT/annotations/animalpose-{train,val,test}.json` (its own 20 keypoints) and
`ANIMALPOSE_ROOT/data/`.

ImageNet pretraining: `--pretrained-dir DIR` with `<model>.pth` per model (torchvision/timm layout,
e.g. resnet50.pth, hrnet_w32.pth); a model without a file is trained from scratch and the table
says so.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ap10k.atomic import write_text_atomic
from ap10k.errors import AP10KError

TABLES = ("table3", "table5", "table6", "table7", "table8", "table9", "table10")
TABLE3_MODELS = ("resnet50", "resnet101", "hrnet_w32", "hrnet_w48", "hourglass52")
MODEL_TITLES = {"resnet50": "SimpleBaseline ResNet-50", "resnet101": "SimpleBaseline ResNet-101",
                "hrnet_w32": "HRNet-w32", "hrnet_w48": "HRNet-w48", "hourglass52": "Hourglass"}
# Table 3 of the paper: AP on the test set, (without, with) ImageNet pretraining.
PAPER_TABLE3 = {"resnet50": (0.646, 0.699), "resnet101": (0.667, 0.698),
                "hrnet_w32": (0.703, 0.738), "hrnet_w48": (0.713, 0.744),
                "hourglass52": (0.686, 0.729)}
# Table 10: (tested on AP-10K, tested on Animal-Pose) per setting.
PAPER_TABLE10 = {"direct": (0.424, 0.913), "finetune": (0.722, 0.935),
                 "train-test": (0.727, 0.932)}
WITHIN_TABLES = {"table5": "Bovidae", "table6": "Canidae", "table7": "Felidae"}


@dataclass
class ExperimentOptions:
    """Knobs shared by every run of a table; defaults are the paper's settings."""

    epochs: int = 210
    batch_size: int = 64
    workers: int = 4
    device: str = "auto"
    input_size: int = 256
    repeats: int = 3  # splits 1..3 for Table 3; split seeds 0..2 for the others
    model: str = "hrnet_w32"  # the model of Tables 5–10
    models: tuple[str, ...] = TABLE3_MODELS  # Table 3's rows
    pretrained_dir: str | None = None
    animalpose_root: str | None = None
    val_every: int = 10


@dataclass
class Run:
    """One training + testing job. `tests` maps a column label to (annotation file, images)."""

    key: str  # unique folder name under OUT/runs
    table: str
    row: str
    column: str
    repeat: int
    model: str
    pretrained: str | None  # ImageNet file, or "run:<key>" to start from another run
    train: str
    images: str
    val: str | None
    tests: dict[str, tuple[str, str]] = field(default_factory=dict)


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


def _pool(root: Path) -> Any:
    """All labelled AP-10K images: the union of split 1's train, val and test files."""
    from ap10k.dataset import CocoDataset

    parts = [CocoDataset.load(f) for f in _ap10k_files(root, 1).values()]
    images, anns, seen_i, seen_a = [], [], set(), set()
    for p in parts:
        images += [im for im in p.images if im.id not in seen_i and not seen_i.add(im.id)]
        anns += [a for a in p.annotations if a.id not in seen_a and not seen_a.add(a.id)]
    return replace(parts[0], images=images, annotations=anns, source=f"{root} (split 1 pool)")


def _split_files(root: Path, out: Path, kind: str, seed: int) -> list[Any]:
    """Write (once) and return the experiments of one split kind for one seed."""
    from ap10k import splits

    target = out / "splits" / f"seed{seed}"
    manifest = target / "manifest.json"
    exps = splits.make(_pool(root), kind, splits.SplitConfig(seed=seed))
    known = json.loads(manifest.read_text())["experiments"] if manifest.is_file() else {}
    if any(e.name not in known for e in exps):
        splits.write(exps, target, config=splits.SplitConfig(seed=seed))
    return [(e, {part: str(target / e.name / f"{part}.json") for part in e.parts})
            for e in exps]


def plan(name: str, data_root: str | os.PathLike[str], opts: ExperimentOptions,
         out: str | os.PathLike[str]) -> list[Run]:
    """The runs a table needs (for `all`, every table's, without duplicates)."""
    root, out = Path(data_root), Path(out)
    images = str(root / "data")
    if name == "all":
        runs: dict[str, Run] = {}
        for t in TABLES:
            if t == "table10" and opts.animalpose_root is None:
                continue
            for r in plan(t, root, opts, out):
                runs.setdefault(r.key, r)
        return list(runs.values())
    if name not in TABLES:
        raise AP10KError(f"unknown experiment {name!r}; choose one of {', '.join(TABLES)}, all")
    runs_out: list[Run] = []
    if name == "table3":
        for split in range(1, opts.repeats + 1):
            files = _ap10k_files(root, split)
            for model in opts.models:
                for pre in (False, True):
                    weights = _pretrained(opts, model) if pre else None
                    if pre and weights is None:
                        continue
                    runs_out.append(Run(
                        key=f"{model}-{'imagenet' if pre else 'scratch'}-split{split}",
                        table=name, row=model, column="pretrained" if pre else "scratch",
                        repeat=split, model=model, pretrained=weights, train=files["train"],
                        images=images, val=files["val"], tests={"test": (files["test"], images)}))
        return runs_out
    weights = _pretrained(opts, opts.model)
    tag = f"{opts.model}-{'imagenet' if weights else 'scratch'}"
    from ap10k import taxonomy

    if name in WITHIN_TABLES:
        family = WITHIN_TABLES[name]
        for seed in range(opts.repeats):
            for exp, files in _split_files(root, out, "within-family", seed):
                if exp.meta["family"] != family:
                    continue
                runs_out.append(Run(
                    key=f"{tag}-{exp.name}-seed{seed}", table=name, row=exp.meta["left_out"],
                    column="AP", repeat=seed, model=opts.model, pretrained=weights,
                    train=files["train"], images=images, val=None,
                    tests={"test": (files["test"], images)}))
        return runs_out
    if name == "table8":
        for seed in range(opts.repeats):
            for exp, files in _split_files(root, out, "across-family", seed):
                tests = {f: (files[f"test-{taxonomy.slug(f)}"], images)
                         for f in exp.meta["test_families"]}
                runs_out.append(Run(
                    key=f"{tag}-{exp.name}-seed{seed}", table=name,
                    row=exp.meta["train_family"], column="", repeat=seed, model=opts.model,
                    pretrained=weights, train=files["train"], images=images, val=None,
                    tests=tests))
        return runs_out
    if name == "table9":
        for seed in range(opts.repeats):
            for kind in ("few-shot", "transfer"):
                for exp, files in _split_files(root, out, kind, seed):
                    runs_out.append(Run(
                        key=f"{tag}-{exp.name}-seed{seed}", table=name, row=kind, column="",
                        repeat=seed, model=opts.model, pretrained=weights,
                        train=files["train"], images=images, val=None,
                        tests={"test": (files["test"], images)}))
        return runs_out
    # table10: Animal-Pose <-> AP-10K
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
    for split in range(1, opts.repeats + 1):
        files = _ap10k_files(root, split)
        ap10k_test = (files["test"], images)
        ap_test = (ap_files["test"], ap_images)
        on_ap10k = f"{tag}-ap10k-split{split}"
        on_ap = f"{tag}-animalpose-split{split}"
        runs_out += [
            Run(on_ap10k, name, "ap10k", "", split, opts.model, weights, files["train"], images,
                files["val"], {"ap10k": ap10k_test, "animalpose": ap_test}),
            Run(on_ap, name, "animalpose", "", split, opts.model, weights, ap_files["train"],
                ap_images, ap_files["val"], {"ap10k": ap10k_test, "animalpose": ap_test}),
            Run(f"{on_ap10k}-ft-animalpose", name, "ap10k→animalpose", "", split, opts.model,
                f"run:{on_ap10k}", ap_files["train"], ap_images, ap_files["val"],
                {"animalpose": ap_test}),
            Run(f"{on_ap}-ft-ap10k", name, "animalpose→ap10k", "", split, opts.model,
                f"run:{on_ap}", files["train"], images, files["val"], {"ap10k": ap10k_test}),
        ]
    return runs_out


def describe(runs: list[Run], opts: ExperimentOptions) -> str:
    """The plan as text: one line per training run."""
    lines = [f"{len(runs)} training runs of {opts.epochs} epochs, batch {opts.batch_size}, "
             f"input {opts.input_size}:"]
    for r in runs:
        pre = r.pretrained or "scratch"
        tests = ", ".join(f"{k}={Path(v[0]).name}" for k, v in r.tests.items())
        lines.append(f"  {r.key}: {r.model} from {pre}; train {Path(r.train).name}"
                     f"{'; val ' + Path(r.val).name if r.val else ''}; test {tests}")
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


def run_one(run: Run, opts: ExperimentOptions, out: Path, progress: bool = True
            ) -> dict[str, float]:
    """Train (or resume) one run and test its best (or last) checkpoint; returns AP per test."""
    from ap10k.cocoeval import evaluate
    from ap10k.dataset import CocoDataset
    from ap10k.inference import load_checkpoint, predict_samples
    from ap10k.pipeline import PipelineConfig, samples_from_dataset
    from ap10k.train import TrainConfig, train

    folder = out / "runs" / run.key
    result_file = folder / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())["AP"]
    cache = out / "converted"
    pretrained = run.pretrained
    if pretrained is not None and pretrained.startswith("run:"):
        pretrained = str(out / "runs" / pretrained[4:] / "best.pt")
        if not Path(pretrained).is_file():
            pretrained = str(Path(pretrained).with_name("last.pt"))
    converted_tests = {label: (_converted(f, cache), imgs)
                       for label, (f, imgs) in run.tests.items()}
    cfg = TrainConfig(model=run.model, pretrained=pretrained,
                      train=_converted(run.train, cache), images=run.images,
                      val=_converted(run.val, cache) if run.val else None,
                      out=str(folder), epochs=opts.epochs, batch_size=opts.batch_size,
                      workers=opts.workers, device=opts.device, seed=run.repeat,
                      val_every=opts.val_every,
                      pipeline=PipelineConfig(input_size=opts.input_size,
                                              heatmap_size=opts.input_size // 4))
    resume = (folder / "last.pt").is_file()
    train(cfg, resume=resume, progress=progress)
    ckpt = folder / "best.pt" if (folder / "best.pt").is_file() else folder / "last.pt"
    model, pipe, _ = load_checkpoint(ckpt, "cuda" if _cuda(opts) else "cpu")
    aps = {}
    for label, (f, imgs) in converted_tests.items():
        gt = CocoDataset.load(f)
        results = predict_samples(model, samples_from_dataset(gt, imgs, require_keypoints=False),
                                  pipe, batch_size=64, flip_test=True, workers=opts.workers)
        aps[label] = evaluate(gt, results, warn=False).stats["AP"]
    write_text_atomic(result_file, json.dumps({"AP": aps, "checkpoint": str(ckpt)}) + "\n")
    return aps


def _cuda(opts: ExperimentOptions) -> bool:
    import torch

    return opts.device == "cuda" or (opts.device == "auto" and torch.cuda.is_available())


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table_markdown(name: str, runs: list[Run], results: dict[str, dict[str, float]],
                   opts: ExperimentOptions) -> str:
    """One table as markdown: mean ± std over the repeats that have results."""
    done = [r for r in runs if r.key in results and r.table == name]
    n = len({r.repeat for r in done})
    head = f"## {name} ({n} of {opts.repeats} repeats done, {opts.epochs} epochs)\n\n"
    if name == "table3":
        lines = ["| model | scratch | ImageNet | paper scratch | paper ImageNet |",
                 "|---|---|---|---|---|"]
        for model in opts.models:
            cells = []
            for col in ("scratch", "pretrained"):
                vals = [results[r.key]["test"] for r in done if r.row == model
                        and r.column == col]
                cells.append(_mean_std(vals) if vals or col == "scratch"
                             else "— (no weights file)")
            paper = PAPER_TABLE3.get(model, (math.nan, math.nan))
            lines.append(f"| {MODEL_TITLES.get(model, model)} | {cells[0]} | {cells[1]} | "
                         f"{paper[0]:.3f} | {paper[1]:.3f} |")
        return head + "\n".join(lines) + "\n"
    if name in WITHIN_TABLES:
        lines = [f"| left-out {WITHIN_TABLES[name]} species (test) | AP | paper |", "|---|---|---|"]
        for row in dict.fromkeys(r.row for r in runs if r.table == name):
            vals = [results[r.key]["test"] for r in done if r.row == row]
            lines.append(f"| {row} | {_mean_std(vals)} | see paper |")
        return head + "\n".join(lines) + "\n"
    if name == "table8":
        lines = ["| train family | test family | AP | paper |", "|---|---|---|---|"]
        for r0 in [r for r in runs if r.table == name and r.repeat == 0]:
            for label in r0.tests:
                vals = [results[r.key][label] for r in done if r.row == r0.row]
                lines.append(f"| {r0.row} | {label} | {_mean_std(vals)} | see paper |")
        return head + "\n".join(lines) + "\n"
    if name == "table9":
        lines = ["| setting | AP on the target species | paper |", "|---|---|---|"]
        for row in ("few-shot", "transfer"):
            vals = [results[r.key]["test"] for r in done if r.row == row]
            lines.append(f"| {row} | {_mean_std(vals)} | see paper |")
        return head + "\n".join(lines) + "\n"
    lines = ["| setting | test AP-10K | test Animal-Pose | paper AP-10K | paper Animal-Pose |",
             "|---|---|---|---|---|"]
    settings = {"direct": (("animalpose", "ap10k"), ("ap10k", "animalpose")),
                "finetune": (("animalpose→ap10k", "ap10k"), ("ap10k→animalpose", "animalpose")),
                "train-test": (("ap10k", "ap10k"), ("animalpose", "animalpose"))}
    for setting, cols in settings.items():
        cells = [_mean_std([results[r.key][test] for r in done if r.row == row])
                 for row, test in cols]
        p = PAPER_TABLE10[setting]
        lines.append(f"| {setting} | {cells[0]} | {cells[1]} | {p[0]:.3f} | {p[1]:.3f} |")
    return head + "\n".join(lines) + "\n"


def run_plan(name: str, runs: list[Run], opts: ExperimentOptions, out: str | os.PathLike[str],
             progress: bool = True) -> dict[str, str]:
    """Run every job (fine-tunes after their sources) and write OUT/<table>.md per table."""
    out = Path(out)
    results: dict[str, dict[str, float]] = {}
    ordered = sorted(runs, key=lambda r: (r.pretrained or "").startswith("run:"))
    for i, r in enumerate(ordered, start=1):
        if progress:
            print(f"[{i}/{len(ordered)}] {r.key}", flush=True)
        results[r.key] = run_one(r, opts, out, progress)
    tables = {}
    names = TABLES if name == "all" else (name,)
    for t in names:
        if any(r.table == t for r in runs):
            md = table_markdown(t, runs, results, opts)
            write_text_atomic(out / f"{t}.md", md)
            tables[t] = md
    return tables
