"""`vbgm compose --seconds S --tempo BPM -o OUT.mid`: music without a video."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from vbgm.commands.generate import (
    add_originality_arg,
    add_sampling_args,
    is_auto_key,
    originality_index,
    parse_request,
    report_originality,
    sampling_config,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `compose` subcommand."""
    p = subparsers.add_parser("compose", help="generate music of a given length, no video",
                              description="Free generation (no controls) of a given length.")
    length = p.add_mutually_exclusive_group(required=True)
    length.add_argument("--seconds", type=float, help="length of the music")
    length.add_argument("--bars", type=int, metavar="N", help="length of the music in 4/4 bars")
    p.add_argument("--loop", action="store_true",
                   help="loopable music: the last bar leads back into the first, and the --wav "
                        "plays seamlessly when repeated (best with --bars)")
    p.add_argument("--tempo", type=float, default=110.0, help="tempo in bpm (default 110)")
    p.add_argument("-o", "--output", type=Path, required=True, help="MIDI file to write")
    p.add_argument("--wav", type=Path, help="also render the audio to this WAV file")
    p.add_argument("--stems", type=Path, metavar="DIR",
                   help="also write one WAV and one MIDI per instrument into DIR (they sum to "
                        "the mix)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_sampling_args(p)
    add_originality_arg(p)
    p.set_defaults(func=run, one_shot=True)


def run(args: argparse.Namespace) -> int:
    """Check the request and the destination, then write the MIDI (and WAV) as one transaction."""
    from vbgm.controls import auto_key_without_video
    from vbgm.errors import VbgmError
    from vbgm.midi import song_to_score
    from vbgm.outputs import stem_files
    from vbgm.pipeline import (
        compose,
        free_controls,
        load_model_and_stats,
        loop_length,
        render_outputs,
    )
    from vbgm.render import write_wav
    from vbgm.transaction import Transaction, check_destinations, check_targets, room_for

    request = parse_request(args)
    if is_auto_key(args):
        request = replace(request, key=auto_key_without_video(args.seed))
    if args.bars is not None:
        if not 1 <= args.bars <= 1000:
            raise VbgmError(f"--bars {args.bars}: give a number of bars between 1 and 1000")
        args.seconds = args.bars * 240.0 / args.tempo  # exactly 16 sixteenths per bar
    controls = free_controls(args.seconds, args.tempo)
    targets = [args.output] + ([args.wav] if args.wav else [])
    check_targets([], targets + stem_files(args.stems), args.force)
    rendered = args.wav or args.stems
    need = room_for(extra_bytes=round(args.seconds * 44100 * 4) if rendered else 0)
    check_destinations(targets, need)
    index = originality_index(args)
    model, stats = load_model_and_stats(args.checkpoint)
    with Transaction(targets, force=args.force, need_bytes=need) as tx:
        music = compose(model, controls, args.tempo, request, sampling_config(args),
                        candidates=args.candidates, seed=args.seed, progress=not args.quiet,
                        stats=stats, loop=args.loop)
        best = music.candidates[0]
        score = song_to_score(music.song, args.tempo, key=music.key, sections=best.sections)
        tx.path(args.output).write_bytes(score.dumps_midi())  # dump_midi ignores a full disk
        if rendered:
            with tempfile.TemporaryDirectory(prefix="vbgm-audio-") as scratch:  # flat memory
                audio, _ = render_outputs(tx, score, Path(scratch), args.synth, args.stems,
                                          loop=loop_length(music))
                if args.wav:
                    write_wav(tx.path(args.wav), audio, 44100)
        tx.commit()
    print(("wrote a loop: " if args.loop else "wrote ") + f"{args.output}"
          + (f" and {args.wav}" if args.wav else "")
          + (f" and stems in {args.stems}" if args.stems else "")
          + f": {music.seconds:.1f} s, {len(music.song.notes)} notes "
          f"[{music.timings['generate']:.1f} s]")
    report_originality(index, music.song, music.tempo_bpm, indent="")
    return 0
