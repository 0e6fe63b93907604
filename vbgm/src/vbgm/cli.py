"""`vbgm` command line: video in, music out.

Every failure a user can cause ends in one line `vbgm: error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from vbgm.errors import VbgmError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="vbgm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    # Each subcommand module adds its own parser: add_parser(sub) sets func=run(args).
    from vbgm import commands

    for module in commands.MODULES:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `vbgm` command line (`argv`, default sys.argv[1:]); returns the exit status."""
    return run_command(build_parser().parse_args(argv))


def entry() -> None:
    """The `vbgm` program. A one-shot job (a command that sets `one_shot`: generate, compose)
    leaves without the interpreter's teardown once it returned: its outputs are in place or
    removed, and unloading torch and the media libraries took 0.25-0.6 s of every run (a tenth
    of a short clip's whole time)."""
    args = build_parser().parse_args()
    code = run_command(args)
    if getattr(args, "one_shot", False):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # a closed pipe (`vbgm generate ... | head`)
                stream.flush()
        os._exit(code)
    sys.exit(code)


def run_command(args: argparse.Namespace) -> int:
    """Call the parsed command; every VbgmError becomes one `vbgm: error:` line and status 2.
    In a one-shot job SIGTERM raises `Terminated` from the start (elsewhere while outputs are
    being written), and no output is committed after a stop (`transaction.stops_raise`)."""
    from vbgm.transaction import Terminated, stops_raise

    try:
        if getattr(args, "one_shot", False):
            with stops_raise():
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except VbgmError as exc:
        print(f"vbgm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vbgm: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("vbgm: terminated", file=sys.stderr)
        return 143


if __name__ == "__main__":
    entry()
