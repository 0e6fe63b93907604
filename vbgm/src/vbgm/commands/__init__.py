"""One module per `vbgm` subcommand; each has add_parser(subparsers) and a run(args) it binds.

Modules import their heavy dependencies inside run(), so `vbgm --help` stays instant.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_NAMES = ("prepare", "train", "analyze", "generate", "compose", "evaluate", "demo", "serve",
          "study", "check_originality")


MODULES: list[ModuleType] = [importlib.import_module(f"vbgm.commands.{name}") for name in _NAMES]
