"""Shared fixtures: where the real AP-10K sample lives (../shared/data or $AP10K_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
