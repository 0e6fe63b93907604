"""`vbgm evaluate`: objective metrics of music (the paper's Table 1) and of music-to-video fit.

Subcommands (each a small add_*/run_* pair, so new ones slot in):
  midi DIR...   pitch entropy, grooving similarity and structureness per folder (mean ± std).
  table1 DATASET --baseline RUN --model RUN
                the paper's Table 1 on our data: held-out songs vs free generation by the
                ablated baseline and by the full model.
  video VIDEO_DIR --control C...
                video–music fit and music metrics of the music generated for each video at
                each control degree C, and the trade-off plot.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vbgm.errors import VbgmError

MIDI_SUFFIXES = (".mid", ".midi")
# Result key and table header of the three paper metrics.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pitch_entropy", "Pitch entropy (bits)"),
    ("grooving_similarity", "Grooving similarity"),
    ("structureness", "Structureness (SI)"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `vbgm evaluate` and its subcommands."""
    p = subparsers.add_parser("evaluate", help="objective metrics of music and of its fit to video",
                              description=__doc__.splitlines()[0])
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="evaluate_command", required=True)
    _add_midi(sub)
    _add_table1(sub)
    _add_video(sub)


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
        "midi", help="the paper's three metrics per folder of MIDI files",
        description="Pitch entropy (128 pitches, whole song), grooving pattern similarity and "
                    "structureness indicator (short range 3-8 s, chroma from notes) of every "
                    "MIDI file under each folder; prints mean ± std per folder. Unreadable or "
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


@dataclass
class FolderResult:
    """Per-file metric values of one folder, and the files that could not be used."""

    folder: Path
    values: dict[str, list[float]] = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        return len(next(iter(self.values.values()), []))


def midi_files(folder: Path) -> list[Path]:
    """MIDI files under `folder`, recursively, sorted by path."""
    if not folder.is_dir():
        raise VbgmError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES
                  and p.is_file())


def file_tempo(path: Path, default: float = 120.0) -> float:
    """The first tempo (quarter notes per minute) of a MIDI file; `default` when it has none."""
    import symusic

    score = symusic.Score(str(path), ttype="tick")
    tempos = score.tempos.numpy()
    if len(tempos["time"]) == 0:
        return default
    qpm = 6e7 / float(tempos["mspq"][tempos["time"].argmin()])
    return qpm if qpm > 0 else default


def evaluate_folder(folder: Path, limit: int | None = None, si_range: str = "short",
                    si_source: str = "notes", tempo: float | None = None,
                    progress: bool = True) -> FolderResult:
    """The three metrics of every MIDI file under `folder`; bad files land in `.skipped`."""
    from tqdm import tqdm

    from vbgm.metrics import music_metrics
    from vbgm.midi import read_midi

    files = midi_files(folder)[:limit]
    result = FolderResult(folder, {key: [] for key, _ in METRIC_COLUMNS})
    for path in tqdm(files, desc=folder.name or str(folder), unit="file", disable=not progress):
        try:
            song = read_midi(path)
            bpm = tempo if tempo is not None else file_tempo(path)
            m = music_metrics(song, bpm, si_source=si_source, si_range=si_range)
        except VbgmError as exc:
            result.skipped.append((path, str(exc)))
            continue
        except Exception as exc:  # a file the readers choke on must not end a long evaluation
            result.skipped.append((path, f"{path}: {type(exc).__name__}: {exc}"))
            continue
        for key, _ in METRIC_COLUMNS:
            result.values[key].append(getattr(m, key))
    return result


def table_rows(results: list[FolderResult]) -> list[dict[str, object]]:
    """One summary row per folder: counts, then mean and std of each metric."""
    from vbgm.evaluation import mean_std

    rows = []
    for r in results:
        row: dict[str, object] = {"folder": str(r.folder), "files": r.n_files,
                                  "skipped": len(r.skipped)}
        for key, _ in METRIC_COLUMNS:
            mean, std, count = mean_std(r.values[key])
            row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = mean, std, count
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, object]]) -> str:
    """The summary rows as a markdown table with mean ± std cells."""
    head = ["Folder", "Files", "Skipped"] + [title for _, title in METRIC_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * len(METRIC_COLUMNS)]
    for row in rows:
        cells = [str(row["folder"]), str(row["files"]), str(row["skipped"])]
        for key, _ in METRIC_COLUMNS:
            mean, std = row[f"{key}_mean"], row[f"{key}_std"]
            cells.append("n/a" if not math.isfinite(mean) else f"{mean:.3f} ± {std:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_midi(args: argparse.Namespace) -> int:
    """`vbgm evaluate midi`: print (and optionally write) the per-folder metric table."""

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

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
CHECKPOINT_NAMES = ("model.pt", "best.pt", "last.pt")  # in order of preference in a run folder


def resolve_checkpoint(run: Path) -> Path:
    """The checkpoint of a run: `run` itself when it is a file, else the first of model.pt
    (the final float16 export), best.pt (lowest validation loss) and last.pt found in it."""
    if run.is_file():
        return run
    if not run.is_dir():
        raise VbgmError(f"{run}: no such run folder or checkpoint file")
    for name in CHECKPOINT_NAMES:
        if (run / name).is_file():
            return run / name
    raise VbgmError(f"{run}: no checkpoint in this run folder (looked for "
                    f"{', '.join(CHECKPOINT_NAMES)})")


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


def _song_metrics(song, tempo: float) -> dict[str, float]:
    """The paper's three metrics of one song, with `vbgm evaluate midi`'s defaults."""
    from dataclasses import asdict

    from vbgm.metrics import music_metrics

    return asdict(music_metrics(song, tempo, si_source="notes", si_range="short"))


# ---------------------------------------------------------------------------------------------
# vbgm evaluate table1


def _add_table1(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table1", help="the paper's Table 1: held-out data vs baseline vs CMT",
        description="Reproduce the CMT paper's Table 1 on a prepared dataset. Data: N songs of "
                    "the test split (a seeded sample of those at least as long as the clips), "
                    "cut to their first bars. Baseline: N songs generated freely (C = 0) by a "
                    "model trained with --ablate-controls. CMT: N songs generated freely by the "
                    "full model. Every song has the same length (--bars, or --seconds at "
                    "--tempo) and is measured at the same tempo, with the metrics of `vbgm "
                    "evaluate midi` (pitch entropy over 128 pitches, grooving similarity, "
                    "structureness short range 3-8 s from the notes).")
    p.add_argument("dataset", type=Path, metavar="DATASET", help="a `vbgm prepare` folder")
    p.add_argument("--baseline", type=Path, required=True, metavar="RUN",
                   help="run folder (model.pt/best.pt/last.pt) or .pt of the ablated model")
    p.add_argument("--model", type=Path, required=True, metavar="RUN",
                   help="run folder or .pt of the full CMT model")
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
    p.add_argument("--seed", type=int, default=0, help="seed of the data sample and generation")
    _add_threads(p)
    p.add_argument("--md", type=Path, metavar="OUT", help="also write the table as markdown")
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the table as CSV")
    p.set_defaults(func=run, evaluate_func=run_table1)


def table1_length(bars: int, seconds: float | None, tempo: float) -> int:
    """Song length in sixteenths from --bars, or from --seconds at --tempo."""
    from vbgm.song import SIXTEENTHS_PER_BAR

    if not 20 <= tempo <= 300:
        raise VbgmError(f"--tempo {tempo:g} is out of range (20..300 bpm)")
    if seconds is not None:
        if not (seconds > 0 and math.isfinite(seconds)):
            raise VbgmError(f"--seconds must be positive, got {seconds}")
        return max(1, math.ceil(seconds * tempo / 15.0 - 1e-9))
    if bars < 1:
        raise VbgmError(f"--bars must be at least 1, got {bars}")
    return bars * SIXTEENTHS_PER_BAR


def held_out_songs(dataset, n: int, n_sixteenths: int, seed: int = 0) -> list:
    """(song id, Song) of up to n test-split songs, each cut to its first n_sixteenths.

    Only songs at least that long are eligible (a shorter one would measure a different length
    than the generated clips); n of them are drawn with a seeded RNG, so that the sample mixes
    the sources rather than taking the first folder, and returned in id order.
    """
    import numpy as np

    from vbgm.evaluation import crop_song
    from vbgm.tokens import decode

    test = dataset.split("test")
    if not test:
        raise VbgmError(f"{dataset.root}: the dataset has no test split songs")
    eligible = [i for i in test if dataset.songs[i].n_sixteenths >= n_sixteenths]
    if not eligible:
        longest = max(dataset.songs[i].n_sixteenths for i in test)
        raise VbgmError(f"{dataset.root}: no test song is {n_sixteenths} sixteenths long (the "
                        f"longest has {longest}); ask for shorter songs with --bars/--seconds")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=min(n, len(eligible)), replace=False).tolist())
    return [(i, crop_song(decode(dataset.tokens(i)), n_sixteenths)) for i in chosen]


def generate_free(model, n: int, n_sixteenths: int, seed: int = 0, batch: int = 8,
                  progress=None) -> list:
    """n songs of n_sixteenths generated without controls (C = 0), `batch` at a time.

    Batch k uses seed `seed * 1_000_003 + k`, so runs are reproducible and two seeds do not
    share batches. Every candidate of a batch is kept (no best-of selection).
    """
    from vbgm.sampling import Controls, Request, SamplingConfig, generate

    controls = Controls(n_sixteenths=n_sixteenths)
    config = SamplingConfig(control=0.0)
    songs = []
    for k, start in enumerate(range(0, n, batch)):
        size = min(batch, n - start)
        gens = generate(model, controls, Request(), config, candidates=size,
                        seed=seed * 1_000_003 + k)
        songs += [g.song for g in gens]
        if progress is not None:
            progress.update(size)
    return songs


def run_table1(args: argparse.Namespace) -> int:
    """`vbgm evaluate table1`: print (and optionally write) Table 1 beside the paper's."""
    from tqdm import tqdm

    from vbgm.dataset import Dataset
    from vbgm.evaluation import MUSIC_COLUMNS, summary_row, table1_markdown
    from vbgm.model import load_checkpoint

    if args.n < 1:
        raise VbgmError(f"--n must be at least 1, got {args.n}")
    if args.batch < 1:
        raise VbgmError(f"--batch must be at least 1, got {args.batch}")
    n16 = table1_length(args.bars, args.seconds, args.tempo)
    checkpoints = {"Baseline": resolve_checkpoint(args.baseline),
                   "CMT": resolve_checkpoint(args.model)}
    _check_outputs(args, [args.dataset / "index.json", *checkpoints.values()])
    _set_threads(args.threads)
    dataset = Dataset.load(args.dataset)
    data = held_out_songs(dataset, args.n, n16, args.seed)
    if len(data) < args.n:
        print(f"vbgm: only {len(data)} test songs are at least {n16} sixteenths long; the Data "
              f"row uses those", file=sys.stderr)
    models = {}
    for row, path in checkpoints.items():
        model, _ = load_checkpoint(path)
        ablated = model.config.ablate_controls
        if ablated != (row == "Baseline"):
            print(f"vbgm: warning: {path} was trained "
                  f"{'without' if ablated else 'with'} the control attributes, but is used as "
                  f"the {row} row", file=sys.stderr)
        models[row] = model

    keys = [k for k, _ in MUSIC_COLUMNS]
    length = f"{n16 // 16} bars" if n16 % 16 == 0 else f"{n16} sixteenths"
    songs = {"Data": [s for _, s in data]}
    with tqdm(total=len(data) + 2 * args.n, desc="table1", unit="song",
              disable=not sys.stderr.isatty()) as bar:
        values: dict[str, dict[str, list[float]]] = {}
        for row in ("Data", "Baseline", "CMT"):
            bar.set_postfix_str(row)
            if row != "Data":  # the bar moves per generated batch ...
                songs[row] = generate_free(models[row], args.n, n16, args.seed, args.batch, bar)
            values[row] = {k: [] for k in keys}
            for song in songs[row]:
                for k, v in _song_metrics(song, args.tempo).items():
                    values[row][k].append(v)
                if row == "Data":  # ... and per real song measured
                    bar.update(1)
    sources = {"Data": f"test split of {args.dataset}, first {length}",
               "Baseline": f"{checkpoints['Baseline']}, C = 0",
               "CMT": f"{checkpoints['CMT']}, C = 0"}
    rows = [summary_row({"row": row, "from": sources[row], "songs": len(songs[row])},
                        values[row], keys) for row in ("Data", "Baseline", "CMT")]
    note = (f"Ours: {length} per song at {args.tempo:g} bpm, seed {args.seed}; pitch entropy "
            f"over 128 pitches (drums out), grooving similarity over all bar pairs, "
            f"structureness short range (3-8 s), chroma from the notes; mean ± std over songs. "
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
                    "beat-align, length error: vbgm.metrics.video_fit) and the paper's three "
                    "music metrics. Prints one row per C (mean ± std over videos × samples).")
    p.add_argument("video_dir", type=Path, metavar="VIDEO_DIR",
                   help=f"folder of videos ({', '.join(VIDEO_SUFFIXES)}; not recursive)")
    p.add_argument("--control", "-C", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   metavar="C", help="control degrees in [0, 1] (default 0 0.25 0.5 0.75 1)")
    p.add_argument("--checkpoint", type=Path, metavar="CKPT",
                   help="model checkpoint or run folder (default: the shipped model)")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="songs per video and C, generated in one batch; all are measured "
                        "(default 1)")
    p.add_argument("--tempo", type=float, metavar="BPM", help="tempo instead of the estimate")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_threads(p)
    p.add_argument("--md", type=Path, metavar="OUT", help="also write the table as markdown")
    p.add_argument("--csv", type=Path, metavar="OUT", help="also write the table as CSV")
    p.add_argument("--plot", type=Path, metavar="OUT.png",
                   help="plot of the metrics against C and the fit/music trade-off")
    p.set_defaults(func=run, evaluate_func=run_video)


def video_files(folder: Path) -> list[Path]:
    """Videos directly in `folder` (by suffix), sorted by name."""
    if not folder.is_dir():
        raise VbgmError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES
                   and p.is_file())
    if not files:
        raise VbgmError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return files


def measure_fit(song, analysis, request) -> dict[str, float]:
    """Fit and music metrics of one song generated for one analysed video.

    Visual beats are those with strength > 0 (the ones the sampler may force), at their integer
    sixteenth (the grid the music lives on); strength is checked on the request's rhythm
    instruments (those the forced beats go to).
    """
    from dataclasses import asdict

    import numpy as np

    from vbgm.metrics import video_fit

    beats = np.array([(b.sixteenth, b.strength) for b in analysis.beats if b.strength > 0],
                     dtype=np.int64).reshape(-1, 2)
    fit = video_fit(song, np.array([b.density for b in analysis.bars]), beats[:, 0],
                    beats[:, 1], analysis.tempo_bpm, analysis.duration_s,
                    instruments=request.rhythm_instruments)
    return {**asdict(fit), **_song_metrics(song, analysis.tempo_bpm)}


def run_video(args: argparse.Namespace) -> int:
    """`vbgm evaluate video`: the fit table per C, and optionally the trade-off plot."""
    from tqdm import tqdm

    from vbgm.evaluation import (
        FIT_COLUMNS,
        MUSIC_COLUMNS,
        fit_markdown,
        plot_tradeoff,
        summary_row,
    )
    from vbgm.pipeline import load_model
    from vbgm.sampling import Controls, Request, SamplingConfig, generate
    from vbgm.video import analyze

    controls_c = sorted(set(args.control))
    bad = [c for c in controls_c if not 0.0 <= c <= 1.0]
    if bad:
        raise VbgmError(f"--control values must be in [0, 1], got {bad[0]:g}")
    if args.samples < 1:
        raise VbgmError(f"--samples must be at least 1, got {args.samples}")
    if args.tempo is not None and not 20 <= args.tempo <= 300:
        raise VbgmError(f"--tempo {args.tempo:g} is out of range (20..300 bpm)")
    videos = video_files(args.video_dir)
    checkpoint = resolve_checkpoint(args.checkpoint) if args.checkpoint else None
    _check_outputs(args, videos + ([checkpoint] if checkpoint else []))
    _set_threads(args.threads)
    model = load_model(checkpoint)
    request = Request()
    keys = [k for k, _, _ in FIT_COLUMNS] + [k for k, _ in MUSIC_COLUMNS]
    values = {c: {k: [] for k in keys} for c in controls_c}
    used: list[Path] = []
    show = sys.stderr.isatty()
    for video in tqdm(videos, desc="videos", unit="video", disable=not show):
        try:
            analysis = analyze(video, tempo=args.tempo)
        except VbgmError as exc:
            print(f"vbgm: skipped {exc}", file=sys.stderr)
            continue
        used.append(video)
        controls = Controls.from_analysis(analysis)
        for c in controls_c:
            gens = generate(model, controls, request, SamplingConfig(control=c),
                            candidates=args.samples, seed=args.seed)
            for g in gens:
                for k, v in measure_fit(g.song, analysis, request).items():
                    values[c][k].append(v)
    if not used:
        raise VbgmError(f"{args.video_dir}: none of the videos could be analysed")
    rows = [summary_row({"control": c, "videos": len(used), "songs": len(used) * args.samples},
                        values[c], keys) for c in controls_c]
    note = (f"{len(used)} videos ({', '.join(v.name for v in used)}), {args.samples} song(s) "
            f"per video and C, seed {args.seed}, model {checkpoint or 'shipped default'}. "
            f"Fit on visual beats of strength > 0; music metrics as `vbgm evaluate midi`.")
    md = fit_markdown(rows, note)
    _emit(args, md, rows)
    if args.plot:
        plot_tradeoff(rows, args.plot, f"Fit vs music across C ({len(used)} videos, "
                                       f"{args.samples} song(s) each)")
    return 0
