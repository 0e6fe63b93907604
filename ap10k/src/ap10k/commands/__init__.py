"""One module per `ap10k` subcommand; each has add_parser(subparsers) and a run(args) it binds.

Modules import their heavy dependencies inside run(), so `ap10k --help` stays instant.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_NAMES = (
    "check", "stats", "split", "evaluate", "show", "convert",
    "synth", "train", "predict", "experiment", "export",
)


def _load() -> list[ModuleType]:
    modules = []
    for name in _NAMES:
        try:
            modules.append(importlib.import_module(f"ap10k.commands.{name}"))
        except ModuleNotFoundError as exc:  # a subcommand not written yet
            if exc.name != f"ap10k.commands.{name}":
                raise
    return modules


MODULES = _load()
