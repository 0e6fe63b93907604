"""`vbgm evaluate`: objective metrics of music (Table 1, musicality) and of music-to-video fit.

The measuring lives in `vbgm.evaluation`; this module parses arguments, calls it and prints.

Subcommands (each a small add_*/run_* pair, so new ones slot in):
  midi DIR...   the paper's three metrics per folder (mean ± std), then every measurement (the
                three and the fourteen musicality ones) as mean per folder; with two folders
                (REAL GENERATED) also the relative gap of the second to the first.
  table1 DATASET --baseline RUN --model RUN
                the paper's Table 1 on our data: held-out songs vs free generation by the
                ablated baseline and by the full model.
  loss DATASET MODEL...
                cross-entropy per field of each model over every token of a split.
  video VIDEO_DIR --control C...
                video–music fit and music metrics of the music generated for each video at
                each control degree C, and the trade-off plot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vbgm.commands.generate import add_key_arg, is_auto_key, requested_key, seed_arg
from vbgm.errors import VbgmError

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `vbgm evaluate` and its subcommands."""
    p = subparsers.add_parser("evaluate", help="objective metrics of music and of its fit to video",
                              description=__doc__.splitlines()[0])
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="evaluate_command", required=True)
    _add_midi(sub)
    _add_table1(sub)
    _add_video(sub)
    _add_loss(sub)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen `vbgm evaluate` subcommand."""
    return int(args.evaluate_func(args) or 0)


def _emit(args: argparse.Namespace, md: str, rows: list[dict]) -> None:
    """Print the markdown table and write it (--md) and the rows as CSV (--csv), atomically."""
    from vbgm.atomic import write_text_atomic
    from vbgm.evaluation import csv_text

    print(md, end="")
    if args.md:
        write_text_atomic(args.md, md)
    if args.csv:
        write_text_atomic(args.csv, csv_text(rows))


# ---------------------------------------------------------------------------------------------
# vbgm evaluate midi


def _add_midi(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "midi", help="the paper's three metrics and the musicality measurements per folder",
        description="Pitch entropy (128 pitches, whole song), grooving pattern similarity and "
                    "structureness indicator (short range 3-8 s, chroma from notes) of every "
                    "MIDI file under each folder, printed as mean ± std per folder; then those "
                    "and the fourteen musicality measurements (vbgm.metrics.MUSICALITY) as mean "
                    "per folder, one line per measurement. With exactly two folders, REAL "
                    "GENERATED, a last column gives (generated - real) / |real|. Unreadable or "
                    "unusable files are reported and skipped.")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="folders of MIDI files "
                   "(searched recursively)")
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the table as CSV")
    p.add_argument("--md", type=Path, metavar="OUT", help="also write the table as markdown")
    p.add_argument("--limit", type=int, metavar="N",
                   help="only the first N files of each folder (sorted by path)")
    p.add_argument("--si-range", choices=("short", "mid", "long"), default="short",
                   help="segment-length range of the structureness indicator (default short)")
    p.add_argument("--si-source", choices=("notes", "audio"), default="notes",
                   help="chroma from the notes (default) or from rendered audio")
    p.add_argument("--tempo", type=float, metavar="BPM",
                   help="tempo for the structureness indicator (default: each file's first "
                        "tempo, else 120)")
    p.set_defaults(func=run, evaluate_func=run_midi)


def run_midi(args: argparse.Namespace) -> int:
    """`vbgm evaluate midi`: print (and optionally write) the per-folder metric tables."""
    from vbgm.evaluation import evaluate_folder, markdown_table, midi_files, table_rows

    if args.limit is not None and args.limit < 1:
        raise VbgmError(f"--limit must be at least 1, got {args.limit}")
    if args.tempo is not None and args.tempo <= 0:
        raise VbgmError(f"--tempo must be positive, got {args.tempo}")
    for folder in args.dirs:
        midi_files(folder)  # fail fast on a missing folder, before any long work
    results = []
    for folder in args.dirs:
        r = evaluate_folder(folder, args.limit, args.si_range, args.si_source, args.tempo,
                            progress=sys.stderr.isatty())
        for _, reason in r.skipped:
            print(f"vbgm: skipped {reason}", file=sys.stderr)
        results.append(r)
    if sum(r.n_files for r in results) == 0:
        raise VbgmError("no usable MIDI file in " + ", ".join(str(d) for d in args.dirs))
    rows = table_rows(results)
    md = markdown_table(rows)
    _emit(args, md, rows)
    return 0


# ---------------------------------------------------------------------------------------------
# Shared by table1 and video


def _check_outputs(args: argparse.Namespace, inputs: list[Path]) -> None:
    """Refuse bad output paths before any long work: wrong plot format, outputs that are inputs
    or that collide with each other."""
    outs = [p for p in (args.md, args.csv, getattr(args, "plot", None)) if p is not None]
    plot = getattr(args, "plot", None)
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise VbgmError(f"{plot}: the plot must be one of {', '.join(PLOT_SUFFIXES)}")
    resolved = [p.resolve() for p in outs]
    if len(set(resolved)) != len(resolved):
        raise VbgmError("--md, --csv and --plot must name different files")
    ins = {p.resolve() for p in inputs}
    for p, r in zip(outs, resolved):
        if r in ins:
            raise VbgmError(f"{p}: refusing to overwrite an input file")
        if p.is_dir():
            raise VbgmError(f"{p}: is a folder, not an output file")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads of the model (default 1: one sampling step of a small "
                        "batch is too small to split, and extra threads fight over busy cores; "
                        "measured 5x faster than the default on 2 shared cores)")


def _set_threads(threads: int) -> None:
    import torch

    if threads < 1:
        raise VbgmError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# vbgm evaluate table1


def _add_table1(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table1", help="the paper's Table 1: held-out data vs baseline vs CMT",
        description="Reproduce the CMT paper's Table 1 on a prepared dataset. Data: N songs of "
                    "the test split (a seeded sample of those at least as long as the clips), "
                    "cut to their first bars. Baseline: N songs generated freely (C = 0) by a "
                    "model trained with --ablate-controls. CMT: N songs generated freely by the "
                    "full model (with --control C > 0: under the Data songs' bar densities, "
                    "degree C), in the key --key asks for: by default the one `vbgm compose` "
                    "picks for the batch's seed ('free': no key plan, as in the paper). "
                    "Every song has the same length (--bars, or --seconds at "
                    "--tempo) and is measured at the same tempo, with the metrics of `vbgm "
                    "evaluate midi` (pitch entropy over 128 pitches, grooving similarity, "
                    "structureness short range 3-8 s from the notes).")
    p.add_argument("dataset", type=Path, metavar="DATASET", help="a `vbgm prepare` folder")
    p.add_argument("--baseline", type=Path, metavar="RUN",
                   help="run folder (model.pt/best.pt/last.pt) or .pt of the ablated model "
                        "(no Baseline row without it)")
    p.add_argument("--model", type=Path, metavar="RUN",
                   help="run folder or .pt of the full CMT model (default: the shipped one)")
    p.add_argument("--control", "-C", type=float, nargs="+", default=[0.0], metavar="C",
                   help="control degrees of the CMT rows (default 0: free generation)")
    p.add_argument("--n", type=int, default=20, metavar="N", help="songs per row (default 20)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--bars", type=int, default=16,
                        help="length of every song in bars (default 16)")
    length.add_argument("--seconds", type=float, metavar="S",
                        help="length of every song in seconds at --tempo (instead of --bars)")
    p.add_argument("--tempo", type=float, default=120.0, metavar="BPM",
                   help="tempo the songs are played at for the structureness indicator and "
                        "--seconds (default 120)")
    p.add_argument("--batch", type=int, default=8, metavar="K",
                   help="songs generated together in one batch (default 8)")
    p.add_argument("--seed", type=seed_arg, default=0,
                   help="seed of the data sample and generation")
    add_key_arg(p)
    _add_threads(p)
    p.add_argument("--md", type=Path, metavar="OUT", help="also write the table as markdown")
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the table as CSV")
    p.set_defaults(func=run, evaluate_func=run_table1)


def run_table1(args: argparse.Namespace) -> int:
    """`vbgm evaluate table1`: print (and optionally write) Table 1 beside the paper's."""
    from vbgm.dataset import Dataset
    from vbgm.evaluation import (
        SONG_KEYS,
        held_out_songs,
        resolve_checkpoint,
        summary_row,
        table1_length,
        table1_markdown,
        table1_values,
    )
    from vbgm.model import load_checkpoint
    from vbgm.pipeline import default_checkpoint, stats_of
    from vbgm.request import Request

    if args.n < 1:
        raise VbgmError(f"--n must be at least 1, got {args.n}")
    if args.batch < 1:
        raise VbgmError(f"--batch must be at least 1, got {args.batch}")
    n16 = table1_length(args.bars, args.seconds, args.tempo)
    if any(not 0 <= c <= 1 for c in args.control):
        raise VbgmError(f"control degrees must be in [0, 1], got {args.control}")
    request = Request(key=requested_key(args))
    checkpoints = {"CMT": resolve_checkpoint(args.model) if args.model else default_checkpoint()}
    if args.baseline:
        checkpoints = {"Baseline": resolve_checkpoint(args.baseline), **checkpoints}
    _check_outputs(args, [args.dataset / "index.json", *checkpoints.values()])
    _set_threads(args.threads)
    dataset = Dataset.load(args.dataset)
    data = held_out_songs(dataset, args.n, n16, args.seed)
    if len(data) < args.n:
        print(f"vbgm: only {len(data)} test songs are at least {n16} sixteenths long; the Data "
              f"row uses those", file=sys.stderr)
    models, stats = {}, {}
    for row, path in checkpoints.items():
        model, meta = load_checkpoint(path)
        stats[row] = stats_of(meta)
        ablated = model.config.ablate_controls
        if ablated != (row == "Baseline"):
            print(f"vbgm: warning: {path} was trained "
                  f"{'without' if ablated else 'with'} the control attributes, but is used as "
                  f"the {row} row", file=sys.stderr)
        models[row] = model

    # One CMT row per control degree ("CMT" at C = 0, as in the paper).
    cmt = models.pop("CMT")
    names = {c: "CMT" if c == 0 else f"CMT, C = {c:g}" for c in dict.fromkeys(args.control)}
    models.update({name: cmt for name in names.values()})
    stats.update({name: stats["CMT"] for name in names.values()})
    songs, values = table1_values([s for _, s in data], models, args.n, n16, args.tempo,
                                  args.seed, args.batch, progress=sys.stderr.isatty(),
                                  stats=stats, controls={v: c for c, v in names.items()},
                                  request=request, auto_key=is_auto_key(args))
    length = f"{n16 // 16} bars" if n16 % 16 == 0 else f"{n16} sixteenths"
    sources = {"Data": f"test split of {args.dataset}, first {length}"}
    key = f", key {args.key.strip()}"
    if "Baseline" in checkpoints:
        sources["Baseline"] = f"{checkpoints['Baseline']}, C = 0{key}"
    for c, name in names.items():
        sources[name] = f"{checkpoints['CMT']}, C = {c:g}{key}" + (
            " (the Data songs' bar densities)" if c > 0 else "")
    rows = [summary_row({"row": row, "from": sources[row], "songs": len(songs[row])},
                        values[row], SONG_KEYS) for row in sources]
    note = (f"Ours: {length} per song at {args.tempo:g} bpm, seed {args.seed}; pitch entropy "
            f"over 128 pitches (drums out), grooving similarity over all bar pairs, "
            f"structureness short range (3-8 s), chroma from the notes; musicality as "
            f"vbgm.metrics.MUSICALITY; mean ± std over songs. "
            f"Paper: LPD-5, whole songs (Di et al. 2021, Table 1).")
    md = table1_markdown(rows, note)
    _emit(args, md, rows)
    return 0


# ---------------------------------------------------------------------------------------------
# vbgm evaluate video


def _add_video(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "video", help="video–music fit and music metrics across control degrees C",
        description="Analyse every video in VIDEO_DIR once, generate music for it at each "
                    "control degree C (same seed at every C), and measure how the music fits "
                    "the video (density fidelity, strength error, visual-beat hit rate, "
                    "beat-align, length error: vbgm.metrics.video_fit), the paper's three "
                    "music metrics and the musicality measurements. Prints one row per C (mean "
                    "± std over videos × samples), then the musicality means per C.")
    p.add_argument("video_dir", type=Path, metavar="VIDEO_DIR",
                   help="folder of video files (.mp4, .mov, .mkv, .avi, .mpg, ...; not recursive)")
    p.add_argument("--control", "-C", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   metavar="C", help="control degrees in [0, 1] (default 0 0.25 0.5 0.75 1)")
    p.add_argument("--checkpoint", type=Path, metavar="CKPT",
                   help="model checkpoint or run folder (default: the shipped model)")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="songs per video and C, generated in one batch; all are measured "
                        "(default 1)")
    p.add_argument("--tempo", type=float, metavar="BPM", help="tempo instead of the estimate")
    p.add_argument("--seed", type=seed_arg, default=0, help="random seed (default 0)")
    add_key_arg(p)
    _add_threads(p)
    p.add_argument("--md", type=Path, metavar="OUT", help="also write the table as markdown")
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the table as CSV")
    p.add_argument("--plot", type=Path, metavar="OUT.png",
                   help="plot of the metrics against C and the fit/music trade-off")
    p.set_defaults(func=run, evaluate_func=run_video)


def run_video(args: argparse.Namespace) -> int:
    """`vbgm evaluate video`: the fit table per C, and optionally the trade-off plot."""
    from vbgm.evaluation import (
        FIT_COLUMNS,
        SONG_KEYS,
        fit_markdown,
        plot_tradeoff,
        resolve_checkpoint,
        summary_row,
        video_values,
    )
    from vbgm.formats import video_files  # the same videos `vbgm generate DIR` takes
    from vbgm.pipeline import load_model_and_stats
    from vbgm.request import Request

    controls_c = sorted(set(args.control))
    bad = [c for c in controls_c if not 0.0 <= c <= 1.0]
    if bad:
        raise VbgmError(f"--control values must be in [0, 1], got {bad[0]:g}")
    if args.samples < 1:
        raise VbgmError(f"--samples must be at least 1, got {args.samples}")
    if args.tempo is not None and not 20 <= args.tempo <= 300:
        raise VbgmError(f"--tempo {args.tempo:g} is out of range (20..300 bpm)")
    request = Request(key=requested_key(args))
    videos = video_files(args.video_dir)
    checkpoint = resolve_checkpoint(args.checkpoint) if args.checkpoint else None
    _check_outputs(args, videos + ([checkpoint] if checkpoint else []))
    _set_threads(args.threads)
    model, stats = load_model_and_stats(checkpoint)
    result = video_values(videos, model, controls_c, args.samples, args.seed, args.tempo,
                          progress=sys.stderr.isatty(), stats=stats,
                          request=request, auto_key=is_auto_key(args))
    for reason in result.skipped:
        print(f"vbgm: skipped {reason}", file=sys.stderr)
    used = result.used
    if not used:
        raise VbgmError(f"{args.video_dir}: none of the videos could be analysed")
    keys = [k for k, _, _ in FIT_COLUMNS] + list(SONG_KEYS)
    rows = [summary_row({"control": c, "videos": len(used), "songs": len(used) * args.samples},
                        result.values[c], keys) for c in controls_c]
    note = (f"{len(used)} videos ({', '.join(v.name for v in used)}), {args.samples} song(s) "
            f"per video and C, seed {args.seed}, key {args.key.strip()}, model "
            f"{checkpoint or 'shipped default'}. "
            f"Fit on visual beats of strength > 0; music metrics as `vbgm evaluate midi`.")
    md = fit_markdown(rows, note)
    _emit(args, md, rows)
    if args.plot:
        plot_tradeoff(rows, args.plot, f"Fit vs music across C ({len(used)} videos, "
                                       f"{args.samples} song(s) each)")
    return 0


# ---------------------------------------------------------------------------------------------
# vbgm evaluate loss


def _add_loss(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loss", help="cross-entropy per field of models on a dataset split",
        description="Token-weighted cross-entropy of each of the seven predicted fields and "
                    "their mean (the training loss) over every token of a split of a prepared "
                    "dataset, in consecutive windows: a figure comparable across models and "
                    "runs.")
    p.add_argument("dataset", type=Path, help="dataset folder written by `vbgm prepare`")
    p.add_argument("models", nargs="+", type=Path, metavar="MODEL.pt", help="checkpoints")
    p.add_argument("--split", choices=("train", "valid", "test"), default="valid")
    p.add_argument("--seq-len", type=int, default=512, help="window length (default 512)")
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the table as CSV")
    p.add_argument("--md", type=Path, metavar="OUT", help="also write the table as markdown")
    p.set_defaults(func=run, evaluate_func=run_loss)


def run_loss(args: argparse.Namespace) -> int:
    """`vbgm evaluate loss`: one row per model, one column per field."""
    from vbgm.dataset import Dataset
    from vbgm.model import load_checkpoint
    from vbgm.train import split_losses

    ds = Dataset.load(args.dataset)
    rows = []
    for path in args.models:
        model, meta = load_checkpoint(path)
        losses = split_losses(model, ds, args.split, args.seq_len)
        rows.append({"model": str(path), "keys": meta["config"].keys,
                     **{k: round(v, 4) for k, v in losses.items()}})
    names = [k for k in rows[0] if k not in ("model", "keys")]
    head = ["model", "keys", *names]
    md = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    md += "".join("| " + " | ".join(str(r[k]) for k in head) + " |\n" for r in rows)
    _emit(args, md, rows)
    return 0
