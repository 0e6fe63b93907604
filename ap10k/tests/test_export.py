"""ONNX / TorchScript export checked against PyTorch on real crops of the sample, and `predict`
running the ONNX model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ap10k.cli import main

pytest.importorskip("onnxruntime")


def _trained_looking(model: torch.nn.Module) -> None:
    with torch.no_grad():  # BN statistics away from the identity, so they are exercised too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                # peaked heatmaps of order 1, like a trained model's (the initial head's
                # outputs are ~1e-4 and flat, where a comparison would prove little)
                torch.nn.init.kaiming_normal_(m.weight)
        # ... scaled so that the largest heatmap value is about 1, as after training
        peak = model.eval()(torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)))
        model.final_layer.weight /= peak.abs().max()
        model.final_layer.bias /= peak.abs().max()


@pytest.fixture(scope="module")
def checkpoint(small_checkpoint_file) -> Path:
    """A small SimpleBaseline in the training checkpoint format, with non-trivial weights."""
    return small_checkpoint_file(32, 128, _trained_looking)


def test_onnx_and_torchscript_match_pytorch_on_real_crops(
        checkpoint: Path, ap10k_sample: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ap10k.export import load_onnx, max_heatmap_difference, real_crops
    from ap10k.inference import load_checkpoint

    gt = ap10k_sample / "test_ap10k.json"
    onnx_path, ts_path = tmp_path / "m.onnx", tmp_path / "m.ts"
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(onnx_path),
                 "--torchscript", str(ts_path), "--verify", str(gt), "--images",
                 str(ap10k_sample)]) == 0
    out = capsys.readouterr().out
    diffs = [float(d) for d in re.findall(r"difference from PyTorch (\S+) on 2 real crops", out)]
    assert len(diffs) == 2 and max(diffs) <= 1e-4
    # independently: the crop settings travel in the file; the batch size is free
    model, pipe, _ = load_checkpoint(checkpoint)
    exported, exported_pipe = load_onnx(onnx_path)
    assert exported_pipe == pipe
    crops = real_crops(gt, ap10k_sample, pipe)
    assert crops.shape == (2, 3, 128, 128) and crops.std() > 0.1  # real pixels, normalised
    assert max_heatmap_difference(model, exported, crops) <= 1e-4
    assert max_heatmap_difference(model, exported, crops[:1]) <= 1e-4
    with torch.no_grad():
        assert model(crops).abs().max() > 0.5  # differences are small relative to the output


def test_predict_runs_the_onnx_model(checkpoint: Path, ap10k_sample: Path,
                                     tmp_path: Path) -> None:
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(onnx_path)]) == 0
    images = [str(ap10k_sample / n) for n in ("000000000004.jpg", "000000037516.jpg")]
    boxes = str(ap10k_sample / "test_ap10k.json")
    results = {}
    for name, model in (("torch", checkpoint), ("onnx", onnx_path)):
        assert main(["predict", *images, "--checkpoint", str(model), "--boxes", boxes,
                     "-o", str(tmp_path / name)]) == 0
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert len(results["onnx"]) == len(results["torch"]) == 2
    for a, b in zip(results["torch"], results["onnx"]):
        assert a["image_id"] == b["image_id"] and a["category_id"] == b["category_id"]
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-2)
    assert (tmp_path / "onnx" / "000000037516_pose.jpg").is_file()


def test_export_errors_are_one_line(checkpoint: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["export", "--checkpoint", str(checkpoint)]) == 2
    assert capsys.readouterr().err == ("ap10k: error: nothing to export: give --onnx OUT.onnx "
                                       "and/or --torchscript OUT.ts\n")
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model")
    assert main(["predict", str(checkpoint), "--checkpoint", str(fake), "-o",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ap10k: error: {fake}: not an ONNX file") and err.count("\n") == 1
