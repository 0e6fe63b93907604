"""`check` on the real sample (clean) and on a hand-broken copy (every planted error, no more)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from ap10k.checks import check_file
from ap10k.cli import main


def _sample(ap10k_sample: Path) -> dict:
    return json.loads((ap10k_sample / "test_ap10k.json").read_text())


def test_real_sample_passes(ap10k_sample: Path) -> None:
    report = check_file(ap10k_sample / "test_ap10k.json")
    assert report.issues == [] and report.ok
    assert report.notes == [f"image files looked up in {ap10k_sample.resolve()}"]


def _broken(data: dict) -> tuple[dict, set[tuple[str, str]]]:
    """The sample with planted errors, and the (rule, record) pairs check must report."""
    d = copy.deepcopy(data)
    anns = {a["id"]: a for a in d["annotations"]}
    jaguar, antelope = anns[9284], anns[6]
    jaguar["keypoints"][0] = 10  # left_eye x left of the box (x >= 66)
    jaguar["keypoints"][3 * 2 + 2] = 3  # nose visibility 3
    jaguar["keypoints"][3 * 14:3 * 14 + 2] = jaguar["keypoints"][3 * 11:3 * 11 + 2]  # hip twice
    antelope["num_keypoints"] = 15
    antelope["area"] = antelope["area"] * 1.5
    d["categories"][6]["keypoints"][3] = "nose"  # category 7 names nose twice
    d["categories"][29]["name"] = "puma"  # category 30 is not 'panther'
    next(im for im in d["images"] if im["id"] == 4)["width"] = 1000  # file is 1024 wide
    d["images"].append({"license": 1, "id": 99, "file_name": "missing.jpg", "width": 500,
                        "height": 400, "background": 9})
    kps = [0] * 51
    kps[0:3] = [450, 350, 2]
    d["annotations"] += [
        dict(copy.deepcopy(antelope), id=100, image_id=99, bbox=[400, 300, 200, 200],
             area=40000, num_keypoints=1, keypoints=kps),
        dict(copy.deepcopy(antelope), id=101, category_id=77, area=146289, num_keypoints=16),
        dict(copy.deepcopy(antelope), id=102, image_id=555, area=146289, num_keypoints=16),
    ]
    expected = {
        ("keypoint_outside_box", "annotation 9284"), ("invalid_visibility", "annotation 9284"),
        ("duplicate_keypoint_position", "annotation 9284"),
        ("num_keypoints_mismatch", "annotation 6"), ("area_mismatch", "annotation 6"),
        ("duplicate_keypoint_names", "category 7"), ("unknown_category", "category 30"),
        ("image_size_mismatch", "image 4"), ("missing_image_file", "image 99"),
        ("invalid_background", "image 99"), ("box_outside_image", "annotation 100"),
        ("unknown_category", "annotation 101"), ("unknown_image", "annotation 102"),
    }
    return d, expected


def test_broken_copy_finds_every_planted_error_and_nothing_else(ap10k_sample: Path,
                                                                 tmp_path: Path) -> None:
    data, expected = _broken(_sample(ap10k_sample))
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    report = check_file(path, images_dir=ap10k_sample)
    found = {(i.rule, i.where) for i in report.issues}
    assert found == expected
    assert not report.ok
    assert report.warnings == []  # a duplicate keypoint is an error, as in the paper
    assert "duplicate_keypoint_position" in {i.rule for i in report.errors}
    lenient = check_file(path, images_dir=ap10k_sample,
                         severities={"duplicate_keypoint_position": "warning"})
    assert [i.rule for i in lenient.warnings] == ["duplicate_keypoint_position"]
    assert len(lenient.errors) == len(report.errors) - 1
    outside = next(i for i in report.issues if i.rule == "keypoint_outside_box")
    assert "left_eye (10, 415)" in outside.detail


def test_each_planted_error_alone_is_found(ap10k_sample: Path, tmp_path: Path) -> None:
    """Every rule fires on its own too (no error masks or causes another)."""
    clean = _sample(ap10k_sample)
    cases = {
        "area_mismatch": lambda d: d["annotations"][1].update(area=146289 * 1.02),
        "keypoint_outside_box": lambda d: d["annotations"][1]["keypoints"].__setitem__(1, 600),
        "empty_box": lambda d: d["annotations"][1].update(bbox=[408, 197, 0, 341], area=0),
        "schema": lambda d: d["annotations"][1].update(bbox="408 197 429 341"),
        "duplicate_id": lambda d: d["annotations"][1].update(id=9284),
        "missing_background": lambda d: d["images"][0].pop("background"),
        "keypoint_names": lambda d: d["categories"][0]["keypoints"].reverse(),
        "duplicate_keypoint_position": lambda d: d["annotations"][1]["keypoints"].__setitem__(
            slice(6, 8), d["annotations"][1]["keypoints"][0:2]),  # nose on the left eye
        "no_keypoints": lambda d: d["annotations"][1].update(
            num_keypoints=0, keypoints=[v if i % 3 < 2 else 0 for i, v in
                                        enumerate(d["annotations"][1]["keypoints"])]),
    }
    for rule, mutate in cases.items():
        data = copy.deepcopy(clean)
        mutate(data)
        path = tmp_path / f"{rule}.json"
        path.write_text(json.dumps(data))
        rules = {i.rule for i in check_file(path, images_dir=ap10k_sample).issues}
        assert rules == {rule}, rule
    # the paper's automatic check rejects a duplicate keypoint; --duplicate-keypoints lowers it
    dup = str(tmp_path / "duplicate_keypoint_position.json")
    assert main(["check", dup, "--images", str(ap10k_sample)]) == 1
    assert main(["check", dup, "--images", str(ap10k_sample),
                 "--duplicate-keypoints", "warning"]) == 0
    # a 0.5 % area difference and a keypoint on the box edge are within tolerance
    data = copy.deepcopy(clean)
    data["annotations"][1]["area"] = 146289 * 1.005
    data["annotations"][1]["keypoints"][0:2] = [408 + 429, 197]
    path = tmp_path / "tolerated.json"
    path.write_text(json.dumps(data))
    assert check_file(path, images_dir=ap10k_sample).issues == []


def test_cli_report_and_exit_codes(ap10k_sample: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ap10k_sample / "test_ap10k.json")]) == 0
    assert "no problems found" in capsys.readouterr().out
    data, expected = _broken(_sample(ap10k_sample))
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    out_json = tmp_path / "report.json"
    assert main(["check", str(path), "--images", str(ap10k_sample), "--json",
                 str(out_json)]) == 1
    out = capsys.readouterr().out
    assert "ERROR   keypoint_outside_box (1)" in out and "annotation 9284" in out
    assert "13 error(s), 0 warning(s)" in out
    assert main(["check", str(path), "--images", str(ap10k_sample),
                 "--duplicate-keypoints", "warning"]) == 1
    assert "12 error(s), 1 warning(s)" in capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert report["ok"] is False and report["rules"]["unknown_category"]["count"] == 2
    # malformed file: one error line, exit 2, no traceback
    path.write_text("{not json")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ap10k: error: ") and "not valid JSON" in err
    assert err.count("\n") == 1 and "Traceback" not in err
