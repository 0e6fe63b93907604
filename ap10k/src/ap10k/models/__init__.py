"""Top-down heatmap pose models and the registry that builds them by name.

Every model maps an image batch (B, 3, H, W) to heatmaps (B, K, H/4, W/4).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from torch import nn

from ap10k.errors import AP10KError
from ap10k.models.hourglass import StackedHourglass
from ap10k.models.hrnet import HRNet
from ap10k.models.pretrained import LoadReport, load_pretrained
from ap10k.models.simplebaseline import SimpleBaseline

MODELS: dict[str, Callable[..., nn.Module]] = {
    **{f"resnet{d}": (lambda d=d, **kw: SimpleBaseline(d, **kw)) for d in (18, 34, 50, 101, 152)},
    **{f"hrnet_w{w}": (lambda w=w, **kw: HRNet(w, **kw)) for w in (18, 32, 48)},
    "hourglass52": lambda **kw: StackedHourglass(1, **kw),
    "hourglass104": lambda **kw: StackedHourglass(2, **kw),
}

# The five models of the paper's Table 3, by the names the paper uses.
PAPER_MODELS = {"ResNet-50": "resnet50", "ResNet-101": "resnet101", "HRNet-w32": "hrnet_w32",
                "HRNet-w48": "hrnet_w48", "Hourglass": "hourglass52"}


def build_model(name: str, pretrained: str | os.PathLike[str] | None = None,
                num_keypoints: int = 17, **options: object) -> nn.Module:
    """The model called `name` (see MODELS), with ImageNet/pose weights from `pretrained`.

    `options` go to the model's constructor (e.g. `deconv_channels=128` for a lighter
    SimpleBaseline head).
    """
    if name not in MODELS:
        raise AP10KError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    try:
        model = MODELS[name](num_keypoints=num_keypoints, **options)
    except TypeError as exc:
        raise AP10KError(f"model {name!r}: bad options {options} ({exc})") from exc
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "PAPER_MODELS", "LoadReport", "build_model", "count_parameters",
           "load_pretrained"]
