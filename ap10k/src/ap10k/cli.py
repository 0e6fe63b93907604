"""`ap10k` command line for the AP-10K animal pose benchmark.

Every failure a user can cause ends in one line `ap10k: error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from ap10k.errors import AP10KError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="ap10k", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    from ap10k import commands

    for module in commands.MODULES:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ap10k` program."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AP10KError as exc:
        print(f"ap10k: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ap10k: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
