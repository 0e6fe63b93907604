"""Experiment splits on a synthetic 54-species pool built from the real sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ap10k.cli import main
from ap10k.dataset import CocoDataset
from ap10k.errors import AP10KError

from ap10k import splits, taxonomy


@pytest.fixture(scope="module")
def pool(species_pool: Path) -> CocoDataset:
    return CocoDataset.load(species_pool)


def _ids(ds: CocoDataset) -> set[int]:
    return {im.id for im in ds.images}


def _species(ds: CocoDataset) -> set[int]:
    return {a.category_id for a in ds.annotations}


def test_random_splits_partition_and_stratify(pool: CocoDataset) -> None:
    exps = splits.random_splits(pool, seed=3)
    assert len(exps) == 3
    everything = _ids(pool)
    for n, e in enumerate(exps, 1):
        train, val, test = (e.parts[f"ap10k-{p}-split{n}"] for p in ("train", "val", "test"))
        assert not (_ids(train) & _ids(val) or _ids(train) & _ids(test) or _ids(val) & _ids(test))
        assert _ids(train) | _ids(val) | _ids(test) == everything
        assert len(train.images) / len(everything) == pytest.approx(0.7, abs=0.02)
        assert len(test.images) / len(everything) == pytest.approx(0.2, abs=0.02)
        # stratified: every species with 30+ images is ~7:1:2 on its own
        species = pool.image_species()
        for sid in range(1, 55):
            mine = {i for i, s in species.items() if s == sid}
            if len(mine) >= 30:
                assert len(mine & _ids(train)) / len(mine) == pytest.approx(0.7, abs=0.04)
                assert len(mine & _ids(test)) / len(mine) == pytest.approx(0.2, abs=0.04)
    assert _ids(exps[0].parts["ap10k-test-split1"]) != _ids(exps[1].parts["ap10k-test-split2"])


def test_leave_one_species_out(pool: CocoDataset) -> None:
    exps = splits.leave_one_species_out(pool)
    assert len(exps) == 6 + 4 + 10  # Bovidae, Canidae, Felidae species
    for e in exps:
        left_out = e.meta["left_out_id"]
        family = set(taxonomy.species_of_family(e.meta["family"]))
        train, test = e.parts["train"], e.parts["test"]
        assert left_out not in _species(train)
        assert _species(train) == family - {left_out}
        assert _species(test) == {left_out}
        assert not _ids(train) & _ids(test)
        # the left-out species' images are all in test: none was silently dropped
        assert _ids(test) == {a.image_id for a in pool.annotations if a.category_id == left_out}


def test_across_families(pool: CocoDataset) -> None:
    exps = {e.name: e for e in splits.across_families(pool)}
    assert set(exps) == {"across-bovidae", "across-cercopithecidae"}
    bov = exps["across-bovidae"].parts
    assert set(bov) == {"train", "test-cervidae", "test-equidae", "test-hominidae"}
    assert _species(bov["train"]) == set(taxonomy.species_of_family("Bovidae"))
    assert _species(bov["test-equidae"]) == {21, 22}
    for part, ds in bov.items():
        if part != "train":
            assert not _ids(ds) & _ids(bov["train"])
    cer = exps["across-cercopithecidae"].parts
    assert _species(cer["test-hominidae"]) == {35, 36, 37}


def test_few_shot_exactly_k_and_transfer(pool: CocoDataset) -> None:
    few = splits.few_shot_and_transfer(pool, "Bovidae", (), k=20, seed=1)
    five = splits.few_shot_and_transfer(pool, "Bovidae", (), k=5, seed=1)
    transfer = splits.few_shot_and_transfer(pool, "Bovidae", (), k=None, seed=1)
    targets = taxonomy.resolve(["Cervidae", "Equidae", "Hominidae"])
    for e, k in ((few, 20), (five, 5)):
        train = e.parts["train"]
        for sid in targets:
            assert len({a.image_id for a in train.annotations if a.category_id == sid}) == k
        assert _species(train) == set(taxonomy.species_of_family("Bovidae")) | set(targets)
    # same held-out test for all three; few-shot sets nested; transfer uses the rest
    assert _ids(few.parts["test"]) == _ids(five.parts["test"]) == _ids(transfer.parts["test"])
    assert _ids(five.parts["train"]) <= _ids(few.parts["train"]) <= _ids(transfer.parts["train"])
    for e in (few, five, transfer):
        assert not _ids(e.parts["train"]) & _ids(e.parts["test"])
        assert _species(e.parts["test"]) == set(targets)
    with pytest.raises(AP10KError, match="fewer than k=200"):
        splits.few_shot_and_transfer(pool, "Bovidae", (), k=200)
    with pytest.raises(AP10KError, match="belong to the base family"):
        splits.few_shot_and_transfer(pool, "Bovidae", ("sheep",), k=5)


def test_cli_all_kinds_deterministic_bytes(species_pool: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for out in ("a", "b"):
        assert main(["split", str(species_pool), "-o", str(tmp_path / out), "--kind", "all",
                     "--seed", "5"]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    # random 9, loso 2 x 20, across 4 + 2, few-shot 2, transfer 2, manifest
    assert len(files) == 9 + 2 * 20 + 4 + 2 + 2 + 2 + 1
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["experiments"]["fewshot-bovidae-k20"]["files"]["train"]["images"] > 0
    assert "loso-felidae-snow-leopard" in manifest["experiments"]
    # another seed gives different files; a later run adds to the manifest
    assert main(["split", str(species_pool), "-o", str(tmp_path / "a"), "--kind", "few-shot",
                 "--k", "5"]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert {"fewshot-bovidae-k5", "fewshot-bovidae-k20"} <= set(manifest["experiments"])
    capsys.readouterr()
    assert main(["split", str(species_pool), "-o", str(tmp_path / "c"), "--kind",
                 "within-family", "--families", "Dragonidae"]) == 2
    assert "unknown AP-10K family 'Dragonidae'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
