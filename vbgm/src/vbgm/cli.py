"""`vbgm` command line: video in, music out.

Every failure a user can cause ends in one line `vbgm: error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
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
    """Entry point of the `vbgm` program."""
    from vbgm.transaction import Terminated  # SIGTERM while outputs are being written

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
    sys.exit(main())
