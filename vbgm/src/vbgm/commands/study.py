"""`vbgm study make|serve|report`: the listening study of the paper's Table 2."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `study` subcommand and its three actions."""
    p = subparsers.add_parser(
        "study", help="run a blind listening study (the paper's Table 2)",
        description="Build a blind listening study from videos and each system's music, serve it "
                    "to participants in a browser, and report Table 2 with its tests.")
    sub = p.add_subparsers(dest="action", required=True)

    m = sub.add_parser("make", help="build a study folder",
                       description="Build a study folder: per video, each system's version "
                                   "(its MP4 copied, or its WAV/MIDI muxed onto the video) "
                                   "under an opaque name, and manifest.json. All-or-nothing.")
    m.add_argument("videos", type=Path, nargs="+", metavar="VIDEO",
                   help="videos (or folders of videos); systems' files are matched by stem")
    m.add_argument("--system", action="append", required=True, metavar="NAME=DIR",
                   help="a system and the folder with its music: STEM.mp4 (video with music), "
                        "else STEM.wav, else STEM.mid per video; give two or more")
    m.add_argument("-o", "--output", type=Path, required=True, metavar="STUDY",
                   help="study folder to create")
    m.add_argument("--force", action="store_true",
                   help="replace an existing study folder (never one that holds answers)")
    m.set_defaults(func=run_make)

    s = sub.add_parser("serve", help="serve a study to participants",
                       description="Serve the study: a page per video with the versions in a "
                                   "counterbalanced order and names hidden; answers are saved "
                                   "to STUDY/answers.sqlite page by page.")
    s.add_argument("study", type=Path, metavar="STUDY")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free)")
    s.set_defaults(func=run_serve)

    r = sub.add_parser("report", help="print Table 2 and the tests",
                       description="Mean ± 95 % CI per system and question, mean rank, Friedman "
                                   "test on the ranks, pairwise Wilcoxon tests (Holm).")
    r.add_argument("study", type=Path, metavar="STUDY")
    r.add_argument("--md", type=Path, metavar="OUT", help="also write the markdown here")
    r.add_argument("--csv", type=Path, metavar="OUT", help="write the numbers as CSV")
    r.add_argument("--plot", type=Path, metavar="OUT.png", help="write a bar plot")
    r.set_defaults(func=run_report)


def run_make(args: argparse.Namespace) -> int:
    """Check every input, then build the study folder in one step."""
    from vbgm.study.make import make_study, parse_system

    systems = [parse_system(spec) for spec in args.system]
    manifest = make_study(args.videos, systems, args.output, force=args.force)
    print(f"wrote {args.output}: {len(manifest.videos)} videos x {len(manifest.systems)} "
          f"systems ({', '.join(manifest.systems)})")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    from vbgm.errors import VbgmError
    from vbgm.study.server import serve

    if not 0 <= args.port <= 65535:
        raise VbgmError(f"--port {args.port}: not a port number (0..65535)")
    try:
        serve(args.study, args.host, args.port)
    except KeyboardInterrupt:
        print("stopped; the answers are saved")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Compute the report, print it, write the requested files (each atomically)."""
    from vbgm.atomic import write_text_atomic
    from vbgm.study.report import load_report, plot, to_csv, to_markdown

    for out in (args.md, args.csv, args.plot):
        if out is not None and out.resolve().parent == args.study.resolve() and \
                out.name in ("manifest.json", "answers.sqlite"):
            from vbgm.errors import VbgmError

            raise VbgmError(f"{out}: refusing to overwrite the study's own file")
    report = load_report(args.study)
    text = to_markdown(report)
    print(text, end="")
    if args.md:
        write_text_atomic(args.md, text)
        print(f"wrote {args.md}")
    if args.csv:
        write_text_atomic(args.csv, to_csv(report))
        print(f"wrote {args.csv}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0
