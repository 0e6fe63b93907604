"""Keypoint constants, taxonomy and COCO JSON I/O against the real AP-10K sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ap10k.dataset import CocoDataset, Instance, ap10k_categories
from ap10k.errors import AP10KError

from ap10k import keypoints as kp
from ap10k import taxonomy


def test_keypoint_constants_are_consistent() -> None:
    assert len(kp.NAMES) == 17 and len(set(kp.NAMES)) == 17
    perm = kp.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(17))  # an involution
    for a, b in kp.FLIP_PAIRS:  # mirrors differ only by left/right
        assert kp.NAMES[a].replace("left", "right") == kp.NAMES[b]
    assert sorted(kp.UPPER_BODY + kp.LOWER_BODY) == list(range(17))
    assert sorted(kp.UPPER_BODY_PUBLISHED + kp.LOWER_BODY_PUBLISHED) == list(range(17))
    # the corrected halves are closed under flipping
    assert set(perm[list(kp.UPPER_BODY)]) == set(kp.UPPER_BODY)
    assert sorted(kp.LEFT + kp.RIGHT + kp.CENTRE) == list(range(17))
    assert kp.edge_side(3, 5) == "left" and kp.edge_side(14, 15) == "right"
    assert kp.edge_side(0, 1) == "centre"
    assert kp.SIGMAS.shape == (17,) and not kp.SIGMAS.flags.writeable


def test_taxonomy() -> None:
    assert taxonomy.NUM_SPECIES == 54 and taxonomy.NUM_FAMILIES == 23
    assert [s.id for s in taxonomy.SPECIES] == list(range(1, 55))
    assert taxonomy.species(26).name == "jaguar" and taxonomy.family_of(26) == "Felidae"
    assert taxonomy.species_of_family("bovidae") == (1, 2, 3, 4, 5, 6)
    assert taxonomy.species_by_name("Argali_Sheep").id == 2
    assert taxonomy.resolve(["Equidae", "zebra", "dog"]) == (21, 22, 8)
    with pytest.raises(AP10KError, match="unknown AP-10K species id 55"):
        taxonomy.species(55)
    with pytest.raises(AP10KError, match="unknown AP-10K family"):
        taxonomy.species_of_family("Dragonidae")


def test_sample_matches_taxonomy_and_round_trips(ap10k_sample: Path, tmp_path: Path) -> None:
    path = ap10k_sample / "test_ap10k.json"
    ds = CocoDataset.load(path)
    assert ds.categories == ap10k_categories()  # taxonomy == the official categories
    for c in ds.categories:
        assert c.skeleton == kp.SKELETON_1BASED
    assert {im.id: im.background for im in ds.images} == {37516: 5, 4: 1}
    a = ds.annotations[0]
    assert a.keypoints.shape == (17, 3) and a.num_keypoints == int(a.labelled.sum()) == 16
    assert a.area == a.bbox[2] * a.bbox[3]  # AP-10K's area is the box area
    out = tmp_path / "copy.json"
    ds.save(out)
    assert json.loads(out.read_text()) == json.loads(path.read_text())
    assert CocoDataset.load(out).to_dict() == ds.to_dict()


def test_subsets(ap10k_sample: Path) -> None:
    ds = CocoDataset.load(ap10k_sample / "test_ap10k.json")
    assert [im.id for im in ds.subset([4]).images] == [4]
    assert [a.image_id for a in ds.subset([4]).annotations] == [4]
    felids = ds.filter_family("Felidae")
    assert [a.category_id for a in felids.annotations] == [26]
    assert [im.id for im in felids.images] == [37516]
    assert ds.image_species() == {37516: 26, 4: 1}
    assert len(ds.without_images([4]).images) == 1


def test_instance_from_keypoints() -> None:
    k = np.zeros((17, 3))
    k[0] = (10, 20, 2)
    k[5] = (40, 60, 2)
    a = Instance.from_keypoints(1, 2, 3, k)
    assert a.bbox == (10.0, 20.0, 30.0, 40.0) and a.area == 1200.0 and a.num_keypoints == 2


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("annotations"), "missing annotations"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\] \(id 9284\).*bbox"),
    (lambda d: d["annotations"][1].update(keypoints=[1, 2, 2] * 16),
     "has 16 keypoints but category 1 names 17"),
    (lambda d: d["images"][0].update(width="wide"), "'width' must be an integer"),
    (lambda d: d["categories"][3].update(keypoints="nose"), "categories\\[3\\]"),
    (lambda d: d.update(images={}), "'images' must be a list"),
])
def test_schema_errors_name_file_and_record(ap10k_sample: Path, tmp_path: Path, mutate,
                                            message: str) -> None:
    data = json.loads((ap10k_sample / "test_ap10k.json").read_text())
    mutate(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(AP10KError, match=message) as info:
        CocoDataset.load(bad)
    assert str(bad) in str(info.value)


def test_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"images": [')
    with pytest.raises(AP10KError, match="not valid JSON"):
        CocoDataset.load(bad)
    with pytest.raises(AP10KError, match="no such file"):
        CocoDataset.load(tmp_path / "missing.json")
    bad.write_text("[1, 2]")
    with pytest.raises(AP10KError, match="expected a COCO JSON object"):
        CocoDataset.load(bad)
