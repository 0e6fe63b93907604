"""`vbgm compose --seconds S --tempo BPM -o OUT.mid`: music without a video."""

from __future__ import annotations

import argparse
from pathlib import Path

from vbgm.commands.generate import add_sampling_args


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `compose` subcommand."""
    p = subparsers.add_parser("compose", help="generate music of a given length, no video",
                              description="Free generation (no controls) of a given length.")
    p.add_argument("--seconds", type=float, required=True, help="length of the music")
    p.add_argument("--tempo", type=float, default=110.0, help="tempo in bpm (default 110)")
    p.add_argument("-o", "--output", type=Path, required=True, help="MIDI file to write")
    p.add_argument("--wav", type=Path, help="also render the audio to this WAV file")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_sampling_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vbgm.errors import VbgmError
    from vbgm.midi import write_midi
    from vbgm.pipeline import compose, free_controls, load_model_and_stats
    from vbgm.render import render_midi, write_wav
    from vbgm.sampling import Request

    request = Request.parse(args.genre, args.instruments)
    controls = free_controls(args.seconds, args.tempo)
    for p in (args.output, args.wav):
        if p is not None and p.exists() and not args.force:
            raise VbgmError(f"{p}: already exists (use --force to overwrite)")
    model, stats = load_model_and_stats(args.checkpoint)
    music = compose(model, controls, args.tempo, request, candidates=args.candidates,
                    seed=args.seed, progress=not args.quiet, stats=stats)
    write_midi(music.song, args.output, args.tempo)
    if args.wav:
        from vbgm.midi import song_to_score

        write_wav(args.wav, render_midi(song_to_score(music.song, args.tempo), 44100,
                                        backend=args.synth), 44100)
    print(f"wrote {args.output}" + (f" and {args.wav}" if args.wav else "")
          + f": {music.seconds:.1f} s, {len(music.song.notes)} notes "
          f"[{music.timings['generate']:.1f} s]")
    return 0
