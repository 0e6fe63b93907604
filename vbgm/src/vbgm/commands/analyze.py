"""`vbgm analyze VIDEO`: motion, visual beats, cuts and tempo of a video, as music controls."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `analyze` subcommand."""
    p = subparsers.add_parser(
        "analyze", help="measure a video's motion, visual beats, cuts and tempo",
        description="Analyse a video: per-bar motion → density class, visual beats and cuts → "
                    "strength class, tempo and grid. Prints a summary; optionally writes JSON "
                    "and a plot.")
    p.add_argument("video", type=Path, help="video file (any container/codec FFmpeg reads)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the analysis as JSON")
    p.add_argument("--plot", type=Path, metavar="OUT.png", help="write a plot (png/svg/pdf)")
    p.add_argument("--tempo", type=float, metavar="BPM", help="use this tempo, not the estimate")
    p.add_argument("--tempo-from-motion", action="store_true",
                   help="keep the motion's tempo even when the cuts come faster than its bars "
                        "(by default they set a tempo whose bars last as long as the shots)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def summary(analysis) -> str:
    """A few lines that say what the analysis found."""
    from vbgm.controls import describe_mode

    a = analysis
    dens = [b.density for b in a.bars]
    strengths = [b.strength for b in a.beats if not b.is_cut]
    lines = [
        f"{a.source}: {a.duration_s:.2f} s, {a.n_frames} frames, {a.fps:.2f} fps, "
        f"{a.width}x{a.height}",
        f"tempo {a.tempo_bpm:g} bpm ({a.tempo_source}), {a.n_sixteenths} sixteenths, "
        f"{len(a.bars)} bars of {240 / a.tempo_bpm:.2f} s{a.pickup_text}",
        f"beats: {len(a.beats) - len(a.cuts)} visual"
        + (f" (strength {min(strengths)}-{max(strengths)})" if strengths else "")
        + f", {len(a.cuts)} cuts"
        + (" at " + ", ".join(f"{b.time_s:.2f}" for b in a.cuts[:8])
           + (" ..." if len(a.cuts) > 8 else "") + " s" if a.cuts else ""),
        f"density {min(dens)}-{max(dens)} (per bar: {' '.join(map(str, dens[:32]))}"
        + (" ..." if len(dens) > 32 else "") + ")",
        f"mode for --key auto: {describe_mode(a.brightness, dens)}",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Analyse, print the summary, write the requested files (atomically, only on success)."""
    from vbgm.atomic import write_text_atomic
    from vbgm.errors import VbgmError
    from vbgm.video import AnalysisConfig, analyze

    if args.tempo is not None and not (20 <= args.tempo <= 300):
        raise VbgmError(f"--tempo {args.tempo:g} is out of range (20..300 bpm)")
    analysis = analyze(args.video, AnalysisConfig(cuts_set_tempo=not args.tempo_from_motion),
                       tempo=args.tempo, progress=not args.quiet)
    print(summary(analysis))
    if args.json:
        write_text_atomic(args.json, analysis.to_json() + "\n")
        print(f"wrote {args.json}")
    if args.plot:
        from vbgm.plot import plot_analysis

        plot_analysis(analysis, args.plot)
        print(f"wrote {args.plot}")
    return 0
