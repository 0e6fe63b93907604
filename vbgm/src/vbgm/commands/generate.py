"""`vbgm generate VIDEO... -o OUT`: background music for videos, rendered and muxed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vbgm.formats import OUTPUT_VIDEO_SUFFIXES

if TYPE_CHECKING:
    from vbgm.duck import DuckConfig
    from vbgm.outputs import Outputs
    from vbgm.request import Request, SamplingConfig
    from vbgm.song import Song
    from vbgm.video import AnalysisAhead


def seed_arg(text: str) -> int:
    """The argparse type of every --seed: a whole number ≥ 0 (`request.check_seed`)."""
    from vbgm.errors import VbgmError
    from vbgm.request import check_seed

    try:
        seed = int(text)
        check_seed(seed)
    except (ValueError, VbgmError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 0") from None
    return seed


def add_key_arg(p: argparse.ArgumentParser) -> None:
    """--key, as `generate`, `compose` and `evaluate table1|video` take it (`is_auto_key`)."""
    p.add_argument("--key", default="auto", metavar="KEY",
                   help="the music's key: 'D minor', 'Db', 'c#m', ...; 'auto' (default) = major "
                        "or minor from the picture (see `vbgm analyze`; major without a video), "
                        "tonic from the seed and the video; 'free' = no key plan, the model's own "
                        "from its first notes")


def is_auto_key(args: argparse.Namespace) -> bool:
    """Whether --key asks for a key picked per video (or per seed without one)."""
    return args.key.strip().lower() == "auto"


def requested_key(args: argparse.Namespace) -> int | None:
    """The key --key names (0..23), None for 'auto' (picked later) and 'free' (no key plan)."""
    from vbgm.harmony import parse_key

    return None if args.key.strip().lower() in ("free", "auto") else parse_key(args.key)


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """Options shared by `generate` and `compose`."""
    p.add_argument("--genre", default="unknown",
                   help="unknown, metal, country, dance, electronic, pop or rock")
    p.add_argument("--instruments", default="all",
                   help="comma list of drums,piano,guitar,bass,strings (default all)")
    add_key_arg(p)
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="random seed (same seed, same music)")
    p.add_argument("--candidates", type=int, default=1, metavar="K",
                   help="generate K songs in one batch and keep the best fit")
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the shipped one)")
    p.add_argument("--synth", default="auto", choices=("auto", "fluidsynth", "symusic"),
                   help="audio renderer")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True,
                   help="int8 weights in the model's recurrent step (the default where torch "
                        "has a quantised CPU engine): 2.2x faster model steps on a CPU, the same "
                        "music distribution (mean KL 1e-4); --no-int8 for float32")
    p.add_argument("--window", type=int, metavar="ROWS",
                   help="token rows the model's state holds before it is rebuilt from the last "
                        "quarter of them: the window the model was trained on (default: the "
                        "shipped model's, 512; past it, it loses its way); 0 = never rebuilt")


def sampling_config(args: argparse.Namespace, control: float | None = None) -> SamplingConfig:
    """The `SamplingConfig` of the options of `add_sampling_args` (and a control degree; None =
    the default)."""
    from dataclasses import replace

    from vbgm.errors import VbgmError
    from vbgm.request import SamplingConfig

    config = SamplingConfig(int8=args.int8)
    if control is not None:
        config = replace(config, control=control)
    if args.window is not None:
        if args.window < 0 or 0 < args.window < 8:
            raise VbgmError(f"--window must be 0 or at least 8 token rows, got {args.window}")
        config = replace(config, window=args.window, keep=max(1, args.window // 4))
    return config


def add_originality_arg(p: argparse.ArgumentParser) -> None:
    """--check-originality, of `generate` and `compose`."""
    p.add_argument("--check-originality", type=Path, metavar="DATASET_DIR",
                   help="compare the music with the training songs of this prepared dataset "
                        "(see `vbgm check-originality`); warns when a passage is copied")


def originality_index(args: argparse.Namespace):
    """The originality index of --check-originality's dataset (built once), or None."""
    if args.check_originality is None:
        return None
    from vbgm.originality import load_or_build

    return load_or_build(args.check_originality, log=print)


def report_originality(index, song: Song, tempo_bpm: float, indent: str = "  ") -> None:
    """Print the originality check of a generated song against `index` (None: not asked); a
    copied passage also warns on stderr."""
    if index is None:
        return
    from vbgm.originality import check

    report = check(song, index, tempo_bpm, top=3)
    for line in report.lines():
        print(indent + line)
    if report.flagged:
        print(f"vbgm: warning: the music copies {report.longest_bars} bars of a training song "
              f"({report.closest[0].source}); try another --seed", file=sys.stderr)


def parse_request(args: argparse.Namespace) -> Request:
    """The Request of --genre and --instruments; an empty --instruments is an error, not "all"."""
    from vbgm.errors import VbgmError
    from vbgm.request import Request

    if not any(name.strip() for name in args.instruments.split(",")):
        raise VbgmError("--instruments is empty: name some of drums,piano,guitar,bass,strings "
                        "(comma list) or leave it out for all")
    return Request.parse(args.genre, args.instruments, key=requested_key(args))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `generate` subcommand."""
    p = subparsers.add_parser(
        "generate", help="compose background music for videos and mux it in",
        description="Analyse each video, generate music that follows its motion (density) and "
                    "visual beats (strength) with control degree C, and write the video with "
                    "the music, plus the MIDI.")
    p.add_argument("videos", nargs="+", type=Path,
                   help="input video(s), or folders of videos (by suffix: .mp4, .avi, .mpg, ...)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output video (.mp4/.mov/.mkv) for one input, else a folder")
    p.add_argument("--midi", type=Path, help="MIDI output (one input; default OUT.mid)")
    p.add_argument("--wav", type=Path, help="also write the rendered audio (one input)")
    p.add_argument("--plot", type=Path, help="analysis plot with the notes (one input)")
    p.add_argument("--stems", type=Path, metavar="DIR",
                   help="also write one WAV and one MIDI per instrument into DIR (they sum to "
                        "the mix; with several videos, one sub-folder per video)")
    p.add_argument("--control", "-C", type=float, default=0.7,
                   help="control degree C in [0, 1] (0 free, 1 every control; default 0.7)")
    p.add_argument("--tempo", type=float, metavar="BPM", help="tempo instead of the estimate")
    p.add_argument("--tempo-from-motion", action="store_true",
                   help="keep the motion's tempo even when the cuts come faster than its bars "
                        "(by default such cuts set a tempo whose bars last as long as the "
                        "shots: every cut on a downbeat)")
    p.add_argument("--keep-audio", action="store_true",
                   help="mix the video's own sound under the music")
    p.add_argument("--duck", type=float, nargs="?", const=12.0, metavar="DB",
                   help="with --keep-audio: lower the music by DB (default 12) where the "
                        "video's own sound is loud (speech), with attack and release")
    p.add_argument("--loop", action="store_true",
                   help="loopable music spanning the video: the last bar leads back into the "
                        "first, and the --wav plays seamlessly when repeated")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="score N videos at once in N processes (one core each; default 1)")
    add_sampling_args(p)
    add_originality_arg(p)
    p.set_defaults(func=run, one_shot=True)


def input_videos(paths: list[Path]) -> list[Path]:
    """The videos to score: files as given, folders replaced by the videos in them."""
    from vbgm.errors import VbgmError
    from vbgm.formats import video_files

    videos: list[Path] = []
    for v in paths:
        if v.is_dir():
            videos.extend(video_files(v))
        elif v.is_file():
            videos.append(v)
        else:
            raise VbgmError(f"{v}: no such video file")
    return videos


def plan_outputs(args: argparse.Namespace, videos: list[Path]) -> list[Outputs]:
    """Output paths per input video."""
    from vbgm.errors import VbgmError
    from vbgm.outputs import Outputs

    out: Path = args.output
    if len(videos) == 1 and out.suffix.lower() in OUTPUT_VIDEO_SUFFIXES:
        return [Outputs(video=out, midi=args.midi or out.with_suffix(".mid"), wav=args.wav,
                        plot=args.plot, stems=args.stems)]
    if out.suffix:
        raise VbgmError(f"{out}: with several videos -o must be a folder; for one video use "
                        f"one of {', '.join(OUTPUT_VIDEO_SUFFIXES)}")
    if args.midi or args.wav or args.plot:
        raise VbgmError("--midi, --wav and --plot name one file: use them with one video")
    stems = [v.stem for v in videos]
    if len(set(stems)) != len(stems):
        raise VbgmError("two input videos have the same name; run them separately")
    return [Outputs(video=out / f"{v.stem}.mp4", midi=out / f"{v.stem}.mid",
                    stems=args.stems / v.stem if args.stems else None) for v in videos]


def duck_config(args: argparse.Namespace) -> DuckConfig | None:
    """The DuckConfig of --duck (None without it); it needs --keep-audio and a positive dB."""
    import math

    from vbgm.duck import DuckConfig
    from vbgm.errors import VbgmError

    if args.duck is None:
        return None
    if not args.keep_audio:
        raise VbgmError("--duck lowers the music under the video's own sound: add --keep-audio")
    if not (math.isfinite(args.duck) and 0 < args.duck <= 60):
        raise VbgmError(f"--duck {args.duck:g}: give the amount in dB, between 0 and 60")
    return DuckConfig(amount_db=args.duck)


def run(args: argparse.Namespace) -> int:
    """Check every request and the destination first (nothing written, nothing started on a bad
    one), then score each video as one transaction; a failed video is reported and the batch
    goes on. The first video is analysed while the model loads (`video.AnalysisAhead`); with
    workers, the longest one, while their fork server imports the pipeline."""
    from dataclasses import replace

    from vbgm.batch import SHARED_CORE_DECODE_THREADS, first_video, start_worker_server
    from vbgm.errors import VbgmError
    from vbgm.outputs import check_outputs
    from vbgm.transaction import check_destinations, room_for
    from vbgm.video import AnalysisAhead, AnalysisConfig

    if args.tempo is not None and not 20 <= args.tempo <= 300:
        raise VbgmError(f"--tempo {args.tempo:g} is out of range (20..300 bpm)")
    if args.candidates < 1:
        raise VbgmError(f"--candidates must be at least 1, got {args.candidates}")
    if args.workers < 1:
        raise VbgmError(f"--workers must be at least 1, got {args.workers}")
    options = {"request": parse_request(args),
               "config": sampling_config(args, args.control),
               "tempo": args.tempo, "candidates": args.candidates, "seed": args.seed,
               "keep_audio": args.keep_audio, "backend": args.synth, "progress": not args.quiet,
               "force": args.force, "auto_key": is_auto_key(args),
               "duck": duck_config(args), "loop": args.loop,
               "analysis_config": AnalysisConfig(cuts_set_tempo=not args.tempo_from_motion)}
    videos = input_videos(args.videos)
    outputs = plan_outputs(args, videos)
    check_outputs(videos, outputs, args.force)
    check_destinations([p for out in outputs for p in out.paths()],
                       max(room_for([v]) for v in videos))
    pool = args.workers > 1 and len(videos) > 1
    ahead = None
    if videos:  # forked before anything starts a thread (the fork server's start does not)
        config = replace(options["analysis_config"],
                         decode_threads=SHARED_CORE_DECODE_THREADS if pool else 0)
        ahead = AnalysisAhead.start(first_video(videos, args.workers), args.tempo,
                                    progress=not (args.quiet or pool), config=config)
    if pool:
        start_worker_server()
    try:
        return score_all(args, videos, outputs, options, ahead)
    finally:
        if ahead is not None:
            ahead.cancel()


def score_all(args: argparse.Namespace, videos: list[Path], outputs: list[Outputs],
              options: dict[str, Any], ahead: AnalysisAhead | None) -> int:
    """The originality index (if asked), then every video with `score_video`'s `options` (see
    `run`)."""
    from vbgm.batch import score_videos
    from vbgm.errors import VbgmError

    index = originality_index(args)
    failed = 0
    for done in score_videos(videos, outputs, options, args.checkpoint, args.workers,
                             ahead=ahead):
        if done.error is not None:
            if len(videos) == 1:
                raise VbgmError(done.error)
            print(f"vbgm: error: {done.error}", file=sys.stderr)
            failed += 1
            continue
        report_originality(index, done.song, done.tempo_bpm)
        total = sum(done.timings.values())
        print(f"  wrote {', '.join(str(p) for p in done.out.paths())} "
              f"({done.seconds:.1f} s of music in {total:.1f} s)")
    if failed:
        print(f"vbgm: {failed} of {len(videos)} videos failed", file=sys.stderr)
        return 2
    return 0
