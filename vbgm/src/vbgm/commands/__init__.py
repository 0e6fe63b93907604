"""One module per `vbgm` subcommand; each has add_parser(subparsers) and a run(args) it binds.

Modules import their heavy dependencies inside run(), so `vbgm --help` stays instant.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_NAMES = ("prepare", "train", "analyze", "generate", "compose", "evaluate", "demo")


def _load() -> list[ModuleType]:
    modules = []
    for name in _NAMES:
        try:
            modules.append(importlib.import_module(f"vbgm.commands.{name}"))
        except ModuleNotFoundError as exc:  # a subcommand not written yet
            if exc.name != f"vbgm.commands.{name}":
                raise
    return modules


MODULES = _load()
