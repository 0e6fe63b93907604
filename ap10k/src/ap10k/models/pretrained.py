"""Loading weights saved by other code bases into this package's models, by parameter name.

Accepted files: a torch pickle (`.pth`, `.pt`, `.bin`, `.ckpt`) or `.safetensors` (when the
`safetensors` package is installed) holding a state dict directly or under `state_dict`, `model`,
`state_dict_ema` or `module`. Files are unpickled safely: tensors and containers, plus the numpy
arrays and scalars that mmpose 0.x and 1.x checkpoints keep in their `meta` (so published mmpose
checkpoints load as they are); any other pickled object is refused with a one-line error unless
the caller trusts the file (`--trust-checkpoint`). Accepted key layouts:

- torchvision / timm ImageNet ResNets (`conv1.weight`, `layer1.0.conv1.weight`, ..., `fc.*`);
  both libraries use the same names, so one rule serves both;
- official / timm / HRNet-Image-Classification HRNets (`conv1`, `transition1.0.0`,
  `stage2.0.branches.0.0.conv1`, ...; the classifier's `incre_modules`, `downsamp_modules`,
  `final_layer.0`, `classifier` are not ours and are ignored);
- whole pose models from the official code, mmpose (`backbone.*`, `keypoint_head.*`) or this
  package, possibly wrapped by DDP (`module.*`).

Every backbone tensor must be found with the right shape (otherwise the file is for another
architecture and loading it silently would train from a half-random network); head tensors load
when their names and shapes match (fine-tuning from a 17-keypoint pose model) and otherwise stay
as initialised.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ap10k.errors import AP10KError

HEAD_PREFIXES = ("final_layer", "deconv_layers")
_WRAPPERS = ("state_dict", "model", "state_dict_ema", "module")


@dataclass
class LoadReport:
    """What a pretrained load did: counts and the names left over on either side."""

    loaded: int = 0
    head_loaded: int = 0
    head_kept: list[str] = field(default_factory=list)  # head tensors left as initialised
    unused: list[str] = field(default_factory=list)  # file tensors that matched nothing


def _numpy_globals() -> list[Any]:
    """What unpickling numpy arrays and scalars needs, under numpy 2's and numpy 1's names: the
    only non-tensor objects mmpose checkpoints hold (in `meta`: scores, sigmas, flip indices).
    None of these runs code beyond building an array, so they are safe to allow."""
    import numpy as np

    mod = np._core.multiarray
    allowed: list[Any] = [mod._reconstruct, mod.scalar, np.ndarray, np.dtype,
                          (mod._reconstruct, "numpy.core.multiarray._reconstruct"),
                          (mod.scalar, "numpy.core.multiarray.scalar")]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return allowed


def _first_line(exc: BaseException) -> str:
    """The informative line of a (possibly multi-line, coloured) torch.load error."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if unsupported:
        return f"it pickles {unsupported.group(1)}, which a safe load refuses"
    inner = re.search(r"WeightsUnpickler error: (.+)", text)
    if inner:
        return inner.group(1).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def load_torch_file(path: str | os.PathLike[str], trust: bool = False) -> object:
    """`torch.load` of a weights file: safely (tensors, containers and numpy arrays only) unless
    `trust`, which unpickles anything and so may run code from the file; trust only files
    you got from a source you trust. Errors are one line naming the file."""
    path = Path(path)
    if trust:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise _unreadable(path, exc) from exc
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise AP10KError(f"{path}: {_first_line(exc)}; if you trust the file, pass "
                             "--trust-checkpoint to load it anyway") from exc
        raise _unreadable(path, exc) from exc
    except Exception as exc:  # zip and format errors
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> AP10KError:
    """The one-line error for a file torch.load cannot read at all."""
    if not zipfile.is_zipfile(path):
        return AP10KError(f"{path}: not a PyTorch weights file (neither torch.save's zip "
                          f"format nor a legacy pickle)")
    return AP10KError(f"{path}: not a readable PyTorch file ({_first_line(exc)})")


def read_state_dict(path: str | os.PathLike[str], trust: bool = False) -> dict[str, Tensor]:
    """The flat name → tensor dict stored in `path` (see the module docstring for formats);
    `trust` as in `load_torch_file`."""
    path = Path(path)
    if not path.is_file():
        raise AP10KError(f"{path}: pretrained weights file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ModuleNotFoundError as exc:
            raise AP10KError(f"{path}: reading .safetensors needs the 'safetensors' package "
                             "(pip install safetensors), or convert the file to .pth") from exc
        state: object = load_file(str(path))
    else:
        state = load_torch_file(path, trust)
    for _ in range(3):  # unwrap {"state_dict": {...}} and friends, possibly nested
        if isinstance(state, dict) and not any(isinstance(v, Tensor) for v in state.values()):
            inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, dict) or not any(isinstance(v, Tensor) for v in state.values()):
        raise AP10KError(f"{path}: holds no state dict of tensors")
    return {str(k): v for k, v in state.items() if isinstance(v, Tensor)}


def _candidates(key: str) -> list[str]:
    """Names `key` may have in our models, most specific first."""
    if key.startswith("module."):
        key = key[len("module."):]
    out = [key]
    for prefix in ("keypoint_head.", "head.", "backbone."):
        if key.startswith(prefix):
            out.append(key[len(prefix):])
    out.append("backbone." + key)
    return out


def _is_head(name: str) -> bool:
    return name.split(".", 1)[0] in HEAD_PREFIXES or name.startswith("final_layers.")


def map_state_dict(source: dict[str, Tensor], model: nn.Module,
                   origin: str = "state dict") -> tuple[dict[str, Tensor], LoadReport]:
    """Rename `source` onto `model`'s state dict keys; raise if the backbone is incomplete."""
    target = model.state_dict()
    mapped: dict[str, Tensor] = {}
    report = LoadReport()
    mismatched: list[str] = []
    for key, value in source.items():
        for name in _candidates(key):
            if name in target and name not in mapped:
                if target[name].shape == value.shape:
                    mapped[name] = value
                elif not _is_head(name):
                    mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(target[name].shape)}")
                break
        else:
            report.unused.append(key)
    if mismatched:
        raise AP10KError(f"{origin}: {len(mismatched)} tensors have the wrong shape for this "
                         f"model (another architecture?), e.g. {mismatched[0]}")
    missing = [k for k in target if k not in mapped and not _is_head(k)
               and not k.endswith("num_batches_tracked")]
    if missing:
        raise AP10KError(f"{origin}: {len(missing)} backbone tensors of this model are not in "
                         f"the file (another architecture?), e.g. {missing[0]}")
    report.head_loaded = sum(1 for k in mapped if _is_head(k))
    report.loaded = len(mapped)
    report.head_kept = [k for k in target if _is_head(k) and k not in mapped]
    return mapped, report


def load_pretrained(model: nn.Module, path: str | os.PathLike[str]) -> LoadReport:
    """Copy the weights in `path` into `model` (in place) and say what was loaded."""
    mapped, report = map_state_dict(read_state_dict(path), model, origin=str(path))
    model.load_state_dict(mapped, strict=False)
    return report
