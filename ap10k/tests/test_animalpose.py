"""Animal-Pose ↔ AP-10K conversion on the real Animal-Pose sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ap10k.checks import check_file
from ap10k.cli import main
from ap10k.dataset import CocoDataset
from ap10k.errors import AP10KError

from ap10k import animalpose as ap
from ap10k import keypoints as kp


def test_mapping_table() -> None:
    assert len(ap.NAMES) == 20 and len(ap.SHARED) == 16
    assert len({a for a, _ in ap.SHARED}) == 16 and len({b for _, b in ap.SHARED}) == 16
    named = {kp.NAMES[a]: ap.NAMES[b] for a, b in ap.SHARED}
    assert "neck" not in named  # no Animal-Pose counterpart
    # AP-10K's shifted-joint convention: hip = stifle (Animal-Pose back elbow), knee = hock
    assert named["left_hip"] == "L_B_Elbow" and named["right_knee"] == "R_B_Knee"
    assert named["left_shoulder"] == "L_F_Elbow" and named["left_elbow"] == "L_F_Knee"
    # left stays left under both skeletons' flips
    for a, b in ap.SHARED:
        assert kp.side(a) == {"L": "left", "R": "right"}.get(ap.NAMES[b][0], "centre")


def test_sample_round_trip_keeps_shared_keypoints(animalpose_sample: Path, tmp_path: Path
                                                  ) -> None:
    src = CocoDataset.load(animalpose_sample / "test_animalpose.json")
    mid = ap.animalpose_to_ap10k(src)
    # the sample labels both animals category 1 'cat'; ho105.jpeg is a horse and stays one
    assert [a.category_id for a in mid.annotations] == [24, 21]
    assert {im.file_name for im in mid.images} == {"ca110.jpeg", "ho105.jpeg"}
    for a, b in zip(src.annotations, mid.annotations):
        assert b.keypoints.shape == (17, 3)
        assert b.keypoints[kp.INDEX["neck"]].tolist() == [0, 0, 0]
        assert b.num_keypoints == int((b.keypoints[:, 2] > 0).sum())
        assert b.area == b.bbox[2] * b.bbox[3]
        for i, j in ap.SHARED:
            assert b.keypoints[i].tolist() == a.keypoints[j].tolist()
    mid.save(tmp_path / "ap10k.json")
    # the converted file is a valid AP-10K file (only the background field is missing)
    report = check_file(tmp_path / "ap10k.json", images_dir=animalpose_sample)
    assert {i.rule for i in report.issues} == {"missing_background"}
    back, dropped = ap.ap10k_to_animalpose(CocoDataset.load(tmp_path / "ap10k.json"))
    assert dropped == 0
    shared = [j for _, j in ap.SHARED]
    for a, c in zip(src.annotations, back.annotations):
        np.testing.assert_array_equal(c.keypoints[shared], a.keypoints[shared])
        unmatched = [j for j in range(20) if j not in shared]
        assert not c.keypoints[unmatched].any()
    assert {c.name for c in back.categories} == set(ap.CATEGORY_IDS)


def test_ap10k_to_animalpose_drops_other_species(ap10k_sample: Path) -> None:
    ds = CocoDataset.load(ap10k_sample / "test_ap10k.json")  # antelope and jaguar
    out, dropped = ap.ap10k_to_animalpose(ds)
    assert dropped == 2 and out.annotations == [] and out.images == []


def test_species_from_the_files_categories(animalpose_sample: Path) -> None:
    """The official numbering (dog 1, cat 2, sheep 3, cow 4, horse 5) decides per instance, even
    against the image name; a single-category file with unnamed images is refused."""
    data = json.loads((animalpose_sample / "test_animalpose.json").read_text())
    template = data["categories"][0]
    data["categories"] = [dict(template, id=i, name=n) for n, i in ap.CATEGORY_IDS.items()]
    data["annotations"][0]["category_id"] = 4  # cow, in ca110.jpeg
    data["annotations"][1]["category_id"] = 5  # horse
    out = ap.animalpose_to_ap10k(CocoDataset.from_dict(data, source="official.json"))
    assert [a.category_id for a in out.annotations] == [5, 21]  # AP-10K cow, horse
    single = json.loads((animalpose_sample / "test_animalpose.json").read_text())
    single["images"][1]["file_name"] = "2008_000123.jpg"  # a VOC-part image: no species name
    with pytest.raises(AP10KError, match="annotation 583: cannot tell its species"):
        ap.animalpose_to_ap10k(CocoDataset.from_dict(single, source="voc.json"))


def test_rejects_non_animalpose_input(ap10k_sample: Path) -> None:
    with pytest.raises(AP10KError, match="Animal-Pose's 20 keypoints"):
        ap.animalpose_to_ap10k(CocoDataset.load(ap10k_sample / "test_ap10k.json"))


def test_cli_convert(animalpose_sample: Path, tmp_path: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.json"
    assert main(["convert", "--to", "ap10k", str(animalpose_sample / "test_animalpose.json"),
                 "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())["categories"]) == 54
    assert "2 instances (horse 1, cat 1)" in capsys.readouterr().out
    out.write_text("keep me")
    assert main(["convert", "--to", "animalpose", str(tmp_path / "missing.json"),
                 "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert out.read_text() == "keep me"
