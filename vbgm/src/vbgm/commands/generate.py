"""`vbgm generate VIDEO... -o OUT`: background music for videos, rendered and muxed."""

from __future__ import annotations

import argparse
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """Options shared by `generate`, `compose` and `demo`."""
    p.add_argument("--genre", default="unknown",
                   help="unknown, metal, country, dance, electronic, pop or rock")
    p.add_argument("--instruments", default="all",
                   help="comma list of drums,piano,guitar,bass,strings (default all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same music)")
    p.add_argument("--candidates", type=int, default=1, metavar="K",
                   help="generate K songs in one batch and keep the best fit")
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the shipped one)")
    p.add_argument("--synth", default="auto", choices=("auto", "fluidsynth", "symusic"),
                   help="audio renderer")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `generate` subcommand."""
    p = subparsers.add_parser(
        "generate", help="compose background music for videos and mux it in",
        description="Analyse each video, generate music that follows its motion (density) and "
                    "visual beats (strength) with control degree C, and write the video with "
                    "the music, plus the MIDI.")
    p.add_argument("videos", nargs="+", type=Path, help="input video(s)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output video (.mp4/.mov/.mkv) for one input, else a folder")
    p.add_argument("--midi", type=Path, help="MIDI output (one input; default OUT.mid)")
    p.add_argument("--wav", type=Path, help="also write the rendered audio (one input)")
    p.add_argument("--plot", type=Path, help="analysis plot with the notes (one input)")
    p.add_argument("--control", "-C", type=float, default=0.7,
                   help="control degree C in [0, 1] (0 free, 1 every control; default 0.7)")
    p.add_argument("--tempo", type=float, metavar="BPM", help="tempo instead of the estimate")
    p.add_argument("--keep-audio", action="store_true",
                   help="mix the video's own sound under the music")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_sampling_args(p)
    p.set_defaults(func=run)


def plan_outputs(args: argparse.Namespace) -> list:
    """Output paths per input video."""
    from vbgm.errors import VbgmError
    from vbgm.pipeline import Outputs

    out: Path = args.output
    if len(args.videos) == 1 and out.suffix.lower() in VIDEO_SUFFIXES:
        return [Outputs(video=out, midi=args.midi or out.with_suffix(".mid"), wav=args.wav,
                        plot=args.plot)]
    if out.suffix:
        raise VbgmError(f"{out}: with several videos -o must be a folder; for one video use "
                        f"one of {', '.join(VIDEO_SUFFIXES)}")
    if args.midi or args.wav or args.plot:
        raise VbgmError("--midi, --wav and --plot name one file: use them with one video")
    stems = [v.stem for v in args.videos]
    if len(set(stems)) != len(stems):
        raise VbgmError("two input videos have the same name; run them separately")
    return [Outputs(video=out / f"{v.stem}.mp4", midi=out / f"{v.stem}.mid") for v in args.videos]


def run(args: argparse.Namespace) -> int:
    """Check every request first (nothing written on a bad one), then score each video."""
    from vbgm.errors import VbgmError
    from vbgm.pipeline import check_outputs, load_model_and_stats, score_video
    from vbgm.sampling import Request, SamplingConfig

    request = Request.parse(args.genre, args.instruments)
    config = SamplingConfig(control=args.control)
    if args.tempo is not None and not 20 <= args.tempo <= 300:
        raise VbgmError(f"--tempo {args.tempo:g} is out of range (20..300 bpm)")
    if args.candidates < 1:
        raise VbgmError(f"--candidates must be at least 1, got {args.candidates}")
    for v in args.videos:
        if not v.is_file():
            raise VbgmError(f"{v}: no such video file")
    outputs = plan_outputs(args)
    check_outputs(list(args.videos), outputs, args.force)
    model, stats = load_model_and_stats(args.checkpoint)
    for i, (video, out) in enumerate(zip(args.videos, outputs), 1):
        print(f"[{i}/{len(args.videos)}] {video}")
        music = score_video(video, out, model, request, config, tempo=args.tempo,
                            candidates=args.candidates, seed=args.seed,
                            keep_audio=args.keep_audio, backend=args.synth,
                            progress=not args.quiet, stats=stats)
        total = sum(music.timings.values())
        print(f"  wrote {', '.join(str(p) for p in out.paths())} "
              f"({music.seconds:.1f} s of music in {total:.1f} s)")
    return 0
