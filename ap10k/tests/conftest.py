"""Shared fixtures: where the real AP-10K sample lives (../shared/data or $AP10K_DATA), and small
SimpleBaseline checkpoints in the training format."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _data_root() -> Path | None:
    env = os.environ.get("AP10K_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "ap10k").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-data folder; skipped when absent, an error in CI (CI=true)."""
    root = _data_root()
    if root is None:
        if os.environ.get("CI") == "true":
            pytest.fail("real data not found at ../shared/data or $AP10K_DATA, and CI=true")
        pytest.skip("real data not found at ../shared/data or $AP10K_DATA")
    return root


@pytest.fixture(scope="session")
def ap10k_sample(data_root: Path) -> Path:
    """Folder holding test_ap10k.json and its two images."""
    return data_root / "ap10k"


@pytest.fixture(scope="session")
def animalpose_sample(data_root: Path) -> Path:
    """Folder holding test_animalpose.json and its two images."""
    return data_root / "animalpose"


def _species_counts() -> dict[int, int]:
    """Images per species for the synthetic pool: a long tail, with every species used by the
    across-family and few-shot experiments given enough images for k = 20."""
    counts = {}
    for s in range(1, 55):
        rank = (s * 17) % 54  # a fixed shuffle of the species
        counts[s] = 4 + round(60 * 0.9**rank)
    for s in (1, 2, 3, 4, 5, 6, 12, 13, 17, 18, 21, 22, 35, 36, 37):
        counts[s] = max(counts[s], 30)
    return counts


@pytest.fixture(scope="session")
def species_pool(ap10k_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic AP-10K file covering all 54 species, built from the two real instances.

    Each image reuses one of the sample's images and its instance, shifted by a few pixels (still
    inside the image), with the species id replaced; every 7th image holds a second animal of the
    same species and every 25th one an animal of another species, so splits must handle images
    with several instances and mixed species. Check passes on it.
    """
    import json

    import numpy as np

    src = json.loads((ap10k_sample / "test_ap10k.json").read_text())
    images = {im["id"]: im for im in src["images"]}
    templates = [(images[a["image_id"]], a) for a in src["annotations"]]
    rng = np.random.default_rng(7)
    out_images, out_anns = [], []

    def instance(template: dict, image: dict, species: int) -> dict:
        x, y, w, h = template["bbox"]
        dx = int(rng.integers(-x, image["width"] - (x + w) + 1))
        dy = int(rng.integers(-y, image["height"] - (y + h) + 1))
        kps = np.array(template["keypoints"]).reshape(-1, 3)
        kps[kps[:, 2] > 0, 0] += dx
        kps[kps[:, 2] > 0, 1] += dy
        return dict(template, id=len(out_anns) + 1, image_id=image["id"], category_id=species,
                    bbox=[x + dx, y + dy, w, h], keypoints=kps.reshape(-1).tolist())

    for species, n in _species_counts().items():
        for _ in range(n):
            image, template = templates[len(out_images) % len(templates)]
            image = dict(image, id=len(out_images) + 1,
                         background=int(rng.integers(1, 9)))
            out_images.append(image)
            out_anns.append(instance(template, image, species))
            if image["id"] % 7 == 0:
                out_anns.append(instance(template, image, species))
            if image["id"] % 25 == 0:
                out_anns.append(instance(template, image, species % 54 + 1))
    pool = dict(src, images=out_images, annotations=out_anns)
    path = tmp_path_factory.mktemp("pool") / "pool.json"
    path.write_text(json.dumps(pool))
    return path


@pytest.fixture(scope="session")
def small_checkpoint_file(tmp_path_factory: pytest.TempPathFactory
                          ) -> Callable[..., Path]:
    """write(deconv_channels, input_size, tune=None) -> a `best.pt` holding a seeded ResNet-18
    SimpleBaseline (heatmaps a quarter of the input) and its TrainConfig, as `ap10k train`
    saves it; `tune(model)` may change the weights first."""
    from ap10k.models import build_model
    from ap10k.pipeline import PipelineConfig
    from ap10k.train import TrainConfig

    def write(deconv_channels: int, input_size: int,
              tune: Callable[[torch.nn.Module], None] | None = None) -> Path:
        torch.manual_seed(0)
        cfg = TrainConfig(model="resnet18", model_options={"deconv_channels": deconv_channels},
                          pipeline=PipelineConfig(input_size=input_size,
                                                  heatmap_size=input_size // 4))
        model = build_model("resnet18", None, deconv_channels=deconv_channels)
        if tune is not None:
            tune(model)
        path = tmp_path_factory.mktemp("ckpt") / "best.pt"
        torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "epoch": 1}, path)
        return path

    return write
