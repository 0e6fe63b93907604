"""`vbgm prepare MIDI_DIR... -o DATASET_DIR`: tokenise folders of MIDI files into a dataset."""

from __future__ import annotations

import argparse
import os


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare", help="turn folders of MIDI files into a token dataset",
        description="Walk MIDI_DIRs recursively (.mid/.midi), merge tracks into the five LPD-5 "
                    "instruments, quantise to sixteenths, tokenise, and write DATASET_DIR "
                    "(index.json, tokens.npy, report.json). Unusable files are skipped and "
                    "listed with their reason.")
    p.add_argument("midi_dirs", nargs="+", metavar="MIDI_DIR", help="folders to walk")
    p.add_argument("-o", "--out", required=True, metavar="DATASET_DIR",
                   help="dataset folder to write (replaced whole if it is already a dataset)")
    p.add_argument("--labels", metavar="CSV",
                   help="genre labels: lines 'path,genre' (path relative to a MIDI_DIR or a file "
                        "stem; genre as a name such as pop or a code 0..6)")
    p.add_argument("--genre", action="append", default=[], metavar="[FOLDER=]GENRE",
                   help="default genre for every file, or for a sub-folder of a MIDI_DIR "
                        "(repeatable; e.g. --genre pop909=pop --genre rock)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes to use (default: all cores)")
    p.add_argument("--min-notes", type=int, default=20,
                   help="drop an instrument with this many notes or fewer (default 20)")
    p.add_argument("--min-bars", type=int, default=4,
                   help="shortest 4/4 section kept before a metre change (default 4)")
    p.add_argument("--max-tokens", type=int, default=10_000,
                   help="skip songs with more token rows (default 10000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbgm.dataset import PrepareConfig, parse_genre, prepare, read_labels
    from vbgm.errors import VbgmError
    from vbgm.midi import QuantizeConfig
    from vbgm.progress import interactive, stage

    if args.workers < 1 or args.min_notes < 0 or args.min_bars < 1 or args.max_tokens < 2:
        raise VbgmError("--workers and --min-bars must be >= 1, --min-notes >= 0, "
                        "--max-tokens >= 2")
    genres = {}
    for g in args.genre:
        folder, _, name = g.rpartition("=")
        genres[folder] = parse_genre(name)
    config = PrepareConfig(
        quantize=QuantizeConfig(min_notes=args.min_notes, min_bars=args.min_bars),
        max_tokens=args.max_tokens, genres=genres)
    labels = read_labels(args.labels) if args.labels else None
    live = not args.no_progress and interactive()  # the dataset's bar redraws a terminal only
    with stage("prepare", len(args.midi_dirs), "folder", enabled=not args.no_progress and not live):
        report = prepare(args.midi_dirs, args.out, config, labels, workers=args.workers,
                         progress=live)
    print(report.summary())
    print(f"report: {os.path.join(args.out, 'report.json')}")
    return 0 if report.kept else 1
