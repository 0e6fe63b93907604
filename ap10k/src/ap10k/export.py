"""Deployment: a trained checkpoint as ONNX (run by onnxruntime) or TorchScript, checked against
PyTorch on real crops.

The exported graph maps normalised crops `(N, 3, S, S)` (N free) to heatmaps `(N, K, S/4, S/4)`;
cropping, the flip test and decoding stay in Python (`ap10k.inference`), so an exported model
gives the same keypoints as the checkpoint. The crop settings travel inside the file (ONNX
metadata `ap10k_pipeline`, TorchScript extra file `ap10k_pipeline.json`), which is what lets
`ap10k predict --checkpoint model.onnx` run without the training checkpoint.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ap10k.atomic import atomic_path
from ap10k.errors import AP10KError
from ap10k.pipeline import PipelineConfig

META_KEY = "ap10k_pipeline"
OPSET = 17


def _onnx_modules() -> tuple[object, object]:
    try:
        import onnx
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise AP10KError(f"ONNX export and inference need the '{exc.name}' package "
                         "(pip install onnx onnxruntime)") from None
    return onnx, onnxruntime


def export_onnx(model: nn.Module, pipe: PipelineConfig, path: str | os.PathLike[str]) -> None:
    """Write `model` as ONNX (opset 17, dynamic batch) with the crop settings as metadata."""
    onnx, _ = _onnx_modules()
    model = model.eval().cpu()
    dummy = torch.zeros(1, 3, pipe.input_size, pipe.input_size)
    with atomic_path(Path(path)) as tmp, warnings.catch_warnings():
        # the TorchScript-based exporter: exact for these convolutional models and needs no
        # onnxscript; torch marks it deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["image"], output_names=["heatmaps"],
                          dynamic_axes={"image": {0: "batch"}, "heatmaps": {0: "batch"}})
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(pipe.to_dict())
        onnx.save(proto, str(tmp))


def export_torchscript(model: nn.Module, pipe: PipelineConfig,
                       path: str | os.PathLike[str]) -> None:
    """Write `model` traced to TorchScript, with the crop settings as an extra file."""
    model = model.eval().cpu()
    dummy = torch.zeros(1, 3, pipe.input_size, pipe.input_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream; tracing works
        traced = torch.jit.trace(model, dummy)
    with atomic_path(Path(path)) as tmp:
        torch.jit.save(traced, str(tmp),
                       _extra_files={f"{META_KEY}.json": json.dumps(pipe.to_dict())})


class OnnxPoseModel(nn.Module):
    """An ONNX pose model behind the `nn.Module` interface `ap10k.inference` uses (CPU)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        _, ort = _onnx_modules()
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise AP10KError(f"{path}: not a loadable ONNX model ({type(exc).__name__})") from None
        # inference asks a model for its device through its parameters
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps for a batch of normalised crops."""
        out = self.session.run(None, {"image": images.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out)


def load_onnx(path: str | os.PathLike[str]) -> tuple[OnnxPoseModel, PipelineConfig]:
    """An exported model and its crop settings."""
    onnx, _ = _onnx_modules()
    path = Path(path)
    if not path.is_file():
        raise AP10KError(f"{path}: ONNX model not found")
    try:
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                .metadata_props}
    except Exception as exc:
        raise AP10KError(f"{path}: not an ONNX file ({type(exc).__name__})") from None
    if META_KEY not in meta:
        raise AP10KError(f"{path}: has no {META_KEY} metadata (export it with `ap10k export`)")
    return OnnxPoseModel(path), PipelineConfig(**json.loads(meta[META_KEY]))


def real_crops(annotations: str | os.PathLike[str], images: str | os.PathLike[str],
               pipe: PipelineConfig, limit: int = 8) -> torch.Tensor:
    """Normalised test-time crops `(n, 3, S, S)` of the first `limit` annotated animals."""
    from ap10k.dataset import CocoDataset
    from ap10k.pipeline import TopDownDataset, samples_from_dataset

    samples = samples_from_dataset(CocoDataset.load(annotations), images,
                                   require_keypoints=False)[:limit]
    if not samples:
        raise AP10KError(f"{annotations}: no annotated animals to crop")
    data = TopDownDataset(samples, pipe, train=False)
    return torch.stack([data[i][0] for i in range(len(samples))])


def max_heatmap_difference(model: nn.Module, exported: nn.Module, crops: torch.Tensor) -> float:
    """Largest absolute heatmap difference between two models on the same crops."""
    with torch.no_grad():
        a = model.eval().cpu()(crops).float().numpy()
        b = exported(crops).float().numpy()
    if a.shape != b.shape:
        raise AP10KError(f"exported model gives heatmaps {b.shape}, PyTorch {a.shape}")
    return float(np.abs(a - b).max())
