"""The AP-10K experiment splits, deterministic from a seed, written as COCO JSON files.

Kinds (paper tables in brackets):

- random [Tables 3-4]: train/val/test 7:1:2 by image, stratified by species (an image's species is
  its most frequent category), three splits from seeds `seed`, `seed + 1`, `seed + 2`; files are
  named like the official ones, `ap10k-{train,val,test}-split{1,2,3}.json`.
- within-family [Tables 5-7]: for each species of Bovidae, Canidae and Felidae, train on the
  family's other species and test on the left-out one.
- across-family [Table 8]: train on one family, test on others (Bovidae → Cervidae, Equidae,
  Hominidae; Cercopithecidae → Hominidae).
- few-shot / transfer [Table 9]: train on a base family plus k images of each target species
  (few-shot) or all of the target species' training images (transfer); both test on the same
  held-out 20 % of each target species, so their numbers are comparable, and few-shot sets are
  nested (the k = 5 images are among the k = 20 ones). Images showing two target species are
  only tested on, so each target species gets exactly k training images.

These kinds make new splits of any annotation pool (`ap10k split`). `ap10k experiment` runs the
paper's Tables 5-9 on the official split files instead, as the paper did (`ap10k.experiments`).

All kinds except `random` draw train and test from one annotation pool (e.g. all labelled images).
Disjointness is by image: an image holding any test species never enters training, and training
files keep only the instances of the training species. Randomness is per species
(`numpy.random.default_rng([seed, species_id])`), so adding a species does not reshuffle others.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ap10k import taxonomy
from ap10k.atomic import write_text_atomic
from ap10k.dataset import CocoDataset
from ap10k.errors import AP10KError

KINDS = ("random", "within-family", "across-family", "few-shot", "transfer")
WITHIN_FAMILIES: tuple[str, ...] = ("Bovidae", "Canidae", "Felidae")
ACROSS_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Bovidae", ("Cervidae", "Equidae", "Hominidae")),
    ("Cercopithecidae", ("Hominidae",)),
)
RANDOM_FRACTIONS = (0.7, 0.1, 0.2)
FEW_SHOT_TEST_FRACTION = 0.2


@dataclass
class Experiment:
    """One experiment: named parts (file stem → dataset) and what was asked for."""

    name: str
    kind: str
    parts: dict[str, CocoDataset]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SplitConfig:
    """What to split and how; defaults reproduce the paper's settings."""

    seed: int = 0
    k: int = 20
    within_families: tuple[str, ...] = WITHIN_FAMILIES
    across: tuple[tuple[str, tuple[str, ...]], ...] = ACROSS_FAMILIES
    base: str = "Bovidae"
    targets: tuple[str, ...] = ()  # families or species; default: the base's across-family tests


# ------------------------------------------------------------------ helpers
def _rng(seed: int, species_id: int) -> np.random.Generator:
    return np.random.default_rng([seed, species_id])


def _images_by_species(ds: CocoDataset) -> dict[int, list[int]]:
    """Image ids grouped by the image's species (0 for images without instances), sorted."""
    groups: dict[int, list[int]] = {}
    species = ds.image_species()
    for im in ds.images:
        groups.setdefault(species.get(im.id, 0), []).append(im.id)
    return {s: sorted(ids) for s, ids in sorted(groups.items())}


def _cut(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Part sizes summing to n, by rounding the cumulative fractions (keeps the ratio overall)."""
    bounds = [int(np.floor(n * c + 0.5)) for c in np.cumsum(fractions)]
    bounds[-1] = n
    return list(np.diff([0] + bounds))


def _images_with_species(ds: CocoDataset, species_ids: set[int]) -> set[int]:
    return {a.image_id for a in ds.annotations if a.category_id in species_ids}


def _train_test(pool: CocoDataset, train_species: tuple[int, ...],
                test_species: tuple[int, ...]) -> tuple[CocoDataset, CocoDataset]:
    """Train on some species, test on others, no image in both (test images win)."""
    test = pool.filter_species(test_species)
    train = pool.filter_species(train_species).without_images(im.id for im in test.images)
    return train, test


def _need(ds: CocoDataset, what: str, source: str) -> CocoDataset:
    if not ds.images:
        raise AP10KError(f"{source}: no images of {what}")
    return ds


# ------------------------------------------------------------------ kinds
def random_splits(pool: CocoDataset, seed: int = 0, n_splits: int = 3,
                  fractions: tuple[float, float, float] = RANDOM_FRACTIONS) -> list[Experiment]:
    """Three (n_splits) stratified random train/val/test splits of the pool."""
    out = []
    groups = _images_by_species(pool)
    for i in range(n_splits):
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for sid, ids in groups.items():
            order = _rng(seed + i, sid).permutation(len(ids))
            sizes = _cut(len(ids), fractions)
            start = 0
            for name, size in zip(parts, sizes):
                parts[name].extend(ids[j] for j in order[start:start + size])
                start += size
        n = i + 1
        out.append(Experiment(
            name="random", kind="random",
            parts={f"ap10k-{name}-split{n}": pool.subset(ids) for name, ids in parts.items()},
            meta={"split": n, "seed": seed + i, "fractions": list(fractions)}))
    return out


def leave_one_species_out(pool: CocoDataset, families: tuple[str, ...] = WITHIN_FAMILIES
                          ) -> list[Experiment]:
    """For each species with images in each family: train on its siblings, test on it."""
    out = []
    for family in families:
        family = taxonomy.family_name(family)
        members = taxonomy.species_of_family(family)
        present = [s for s in members if _images_with_species(pool, {s})]
        _need(pool.filter_species(members), f"family {family}", pool.source)
        for sid in present:
            others = tuple(s for s in members if s != sid)
            train, test = _train_test(pool, others, (sid,))
            name = taxonomy.species(sid).name
            out.append(Experiment(
                name=f"loso-{taxonomy.slug(family)}-{taxonomy.slug(name)}",
                kind="within-family", parts={"train": train, "test": test},
                meta={"family": family, "left_out": name, "left_out_id": sid,
                      "absent_species": [taxonomy.species(s).name for s in members
                                         if s not in present]}))
    return out


def across_families(pool: CocoDataset,
                    pairs: tuple[tuple[str, tuple[str, ...]], ...] = ACROSS_FAMILIES
                    ) -> list[Experiment]:
    """Train on one family, one test file per other family."""
    out = []
    for train_family, test_families in pairs:
        train_family = taxonomy.family_name(train_family)
        test_families = tuple(taxonomy.family_name(f) for f in test_families)
        if train_family in test_families:
            raise AP10KError(f"across-family: {train_family} is both train and test family")
        test_species = tuple(s for f in test_families for s in taxonomy.species_of_family(f))
        train, _ = _train_test(pool, taxonomy.species_of_family(train_family), test_species)
        _need(train, f"family {train_family}", pool.source)
        parts = {"train": train}
        for f in test_families:
            parts[f"test-{taxonomy.slug(f)}"] = _need(pool.filter_family(f), f"family {f}",
                                                      pool.source)
        out.append(Experiment(
            name=f"across-{taxonomy.slug(train_family)}", kind="across-family", parts=parts,
            meta={"train_family": train_family, "test_families": list(test_families)}))
    return out


def _target_species(base: str, targets: tuple[str, ...]) -> tuple[str, tuple[int, ...]]:
    base = taxonomy.family_name(base)
    if not targets:
        defaults = dict(ACROSS_FAMILIES)
        if base not in defaults:
            raise AP10KError(f"no default few-shot targets for base family {base}; "
                             f"pass --targets")
        targets = defaults[base]
    ids = taxonomy.resolve(targets)
    clash = [taxonomy.species(s).name for s in ids if taxonomy.family_of(s) == base]
    if clash:
        raise AP10KError(f"target species {', '.join(clash)} belong to the base family {base}")
    return base, ids


def few_shot_and_transfer(pool: CocoDataset, base: str = "Bovidae",
                          targets: tuple[str, ...] = (), k: int | None = 20, seed: int = 0
                          ) -> Experiment:
    """Base family + k images per target species (k=None: all of them, i.e. transfer)."""
    base, target_ids = _target_species(base, targets)
    base_ids = taxonomy.species_of_family(base)
    groups = _images_by_species(pool.filter_species(target_ids))
    targets_in: dict[int, set[int]] = {}
    for a in pool.annotations:
        if a.category_id in target_ids:
            targets_in.setdefault(a.image_id, set()).add(a.category_id)
    train_images: set[int] = set()
    test_images: set[int] = set()
    counts: dict[str, dict[str, int]] = {}
    for sid in target_ids:
        ids = groups.get(sid, [])
        name = taxonomy.species(sid).name
        if not ids:
            continue
        order = [ids[j] for j in _rng(seed, sid).permutation(len(ids))]
        n_test = int(np.floor(len(ids) * FEW_SHOT_TEST_FRACTION + 0.5))
        n_test = min(max(n_test, 1), len(ids) - 1)  # at least one test and one training image
        # an image showing two target species would give one of them more than k images, so
        # such images are only ever tested on
        test = order[:n_test] + [i for i in order[n_test:] if len(targets_in[i]) > 1]
        candidates = [i for i in order[n_test:] if len(targets_in[i]) == 1]
        if k is not None and len(candidates) < k:
            raise AP10KError(f"{pool.source}: species {name} has {len(candidates)} training "
                             f"images after holding out {n_test} for test, fewer than k={k}")
        chosen = candidates if k is None else candidates[:k]
        train_images.update(chosen)
        test_images.update(test)
        counts[name] = {"train_images": len(chosen), "test_images": len(test)}
    if not counts:
        raise AP10KError(f"{pool.source}: no images of the target species "
                         f"{', '.join(taxonomy.species(s).name for s in target_ids)}")
    # Base images holding a target species are left out, so each target has exactly its k.
    base_part = _need(pool.filter_species(base_ids), f"family {base}", pool.source)
    base_part = base_part.without_images(_images_with_species(pool, set(target_ids)))
    train_ids = {im.id for im in base_part.images} | train_images
    train = pool.filter_species(base_ids + target_ids).subset(train_ids)
    test = pool.filter_species(target_ids).subset(test_images)
    kind = "transfer" if k is None else "few-shot"
    name = (f"transfer-{taxonomy.slug(base)}" if k is None
            else f"fewshot-{taxonomy.slug(base)}-k{k}")
    return Experiment(name=name, kind=kind, parts={"train": train, "test": test},
                      meta={"base": base, "k": k, "seed": seed,
                            "targets": [taxonomy.species(s).name for s in target_ids],
                            "per_species": counts})


def make(pool: CocoDataset, kind: str, config: SplitConfig | None = None) -> list[Experiment]:
    """The experiments of one kind ('all' for every kind)."""
    c = config or SplitConfig()
    if kind == "all":
        return [e for k in KINDS for e in make(pool, k, c)]
    if kind == "random":
        return random_splits(pool, c.seed)
    if kind == "within-family":
        return leave_one_species_out(pool, c.within_families)
    if kind == "across-family":
        return across_families(pool, c.across)
    if kind == "few-shot":
        return [few_shot_and_transfer(pool, c.base, c.targets, c.k, c.seed)]
    if kind == "transfer":
        return [few_shot_and_transfer(pool, c.base, c.targets, None, c.seed)]
    raise AP10KError(f"unknown split kind {kind!r} (known: {', '.join(KINDS)}, all)")


# ------------------------------------------------------------------ output
def write(experiments: list[Experiment], out_dir: str | os.PathLike[str],
          source: str | os.PathLike[str] | None = None, config: SplitConfig | None = None
          ) -> Path:
    """Write every part as `OUT/<experiment>/<part>.json` (atomically) and update
    `OUT/manifest.json` (experiments from earlier runs into the same folder are kept)."""
    out = Path(out_dir)
    manifest_path = out / "manifest.json"
    manifest: dict[str, Any] = {"format": "ap10k-splits", "version": 1, "experiments": {}}
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
            if isinstance(old, dict) and isinstance(old.get("experiments"), dict):
                manifest["experiments"] = old["experiments"]
        except json.JSONDecodeError:
            pass  # a broken manifest is simply rewritten
    src: dict[str, Any] = {}
    if source is not None:
        src = {"source": str(source),
               "source_sha256": hashlib.sha256(Path(source).read_bytes()).hexdigest()}
    for e in experiments:
        key = e.name if e.kind != "random" else f"random-split{e.meta['split']}"
        files = {}
        for part, ds in e.parts.items():
            rel = f"{e.name}/{part}.json"
            ds.save(out / rel)
            files[part] = {"path": rel, "images": len(ds.images), "instances": len(ds.annotations),
                           "species": {str(s): n for s, n in ds.species_counts().items()}}
        manifest["experiments"][key] = {"kind": e.kind, **e.meta, **src,
                                        "config": _config_json(config), "files": files}
    manifest["experiments"] = dict(sorted(manifest["experiments"].items()))
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
    return manifest_path


def _config_json(config: SplitConfig | None) -> dict[str, Any]:
    c = config or SplitConfig()
    return {"seed": c.seed, "k": c.k, "base": c.base, "targets": list(c.targets)}
