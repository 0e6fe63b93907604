"""`vbgm check-originality SONG.mid... --against DATASET_DIR`: is it a copy of a training song?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `check-originality` subcommand."""
    p = subparsers.add_parser(
        "check-originality", help="compare songs with every song of a prepared dataset",
        description="Report, for each MIDI file, the closest songs of the dataset's training "
                    "split (shared (interval, duration) phrases and drum patterns) and the "
                    "longest passage copied from one of them, in bars and seconds. Exit "
                    "status 1 when a song has a copied passage of --flag-bars or more.")
    p.add_argument("songs", nargs="+", type=Path, help="MIDI files to check")
    p.add_argument("--against", type=Path, required=True, metavar="DATASET_DIR",
                   help="a dataset made by `vbgm prepare`")
    p.add_argument("--index", type=Path, metavar="FILE",
                   help="the dataset's index (built there once when missing; default: "
                        "~/.cache/vbgm/originality-<dataset fingerprint>.npz)")
    p.add_argument("--flag-bars", type=int, default=None, metavar="N",
                   help="a copied passage of N bars or more flags the song (default 4)")
    p.add_argument("--top", type=int, default=5, help="how many closest songs to list")
    p.add_argument("--json", type=Path, help="also write the reports as JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check each song; 0 when none is flagged, 1 when one is (2: bad input, nothing written)."""
    import time

    from vbgm.errors import VbgmError
    from vbgm.originality import FLAG_BARS, check, load_or_build, read_song
    from vbgm.transaction import Transaction, check_targets

    flag = FLAG_BARS if args.flag_bars is None else args.flag_bars
    if flag < 1 or args.top < 1:
        raise VbgmError("--flag-bars and --top must be at least 1")
    if args.json:
        check_targets(args.songs, [args.json], args.force)
    songs = [(path, *read_song(path)) for path in args.songs]  # every file readable, first
    index = load_or_build(args.against, args.index, log=print)
    reports, flagged = {}, 0
    for path, song, tempo in songs:
        t = time.perf_counter()
        report = check(song, index, tempo, top=args.top, flag_bars=flag)
        print(f"{path}: " + "\n".join(report.lines())
              + f"\n  [{len(index.sources)} songs in {time.perf_counter() - t:.2f} s]")
        reports[str(path)] = report.to_dict()
        flagged += report.flagged
    if args.json:
        with Transaction([args.json], force=args.force) as tx:
            tx.path(args.json).write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")
            tx.commit()
    return 1 if flagged else 0
