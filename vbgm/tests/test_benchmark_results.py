"""Every committed benchmark result follows `make bench`'s results convention, so the summary
table (`benchmarks/run_all.py`) can read it: a results file without figures makes it fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(p.name for p in (BENCH / "results").glob("*.json")
                                        if p.name != "summary.json"))
def test_each_result_file_has_figures(path):
    name, figures = _run_all().read_figures(BENCH / "results" / path)
    assert name and figures, path
