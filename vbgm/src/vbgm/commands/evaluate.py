"""`vbgm evaluate`: objective metrics of music (the paper's Table 1) and of music-to-video fit.

Subcommands (each a small add_*/run_* pair, so new ones slot in):
  midi DIR...   pitch entropy, grooving similarity and structureness per folder (mean ± std).
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


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen `vbgm evaluate` subcommand."""
    return int(args.evaluate_func(args) or 0)


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


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    """Mean and (population) std over the finite values, and how many there were."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std()), len(v)


def table_rows(results: list[FolderResult]) -> list[dict[str, object]]:
    """One summary row per folder: counts, then mean and std of each metric."""
    rows = []
    for r in results:
        row: dict[str, object] = {"folder": str(r.folder), "files": r.n_files,
                                  "skipped": len(r.skipped)}
        for key, _ in METRIC_COLUMNS:
            mean, std, count = _mean_std(r.values[key])
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


def csv_text(rows: list[dict[str, object]]) -> str:
    """The summary rows as CSV (header line first)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def run_midi(args: argparse.Namespace) -> int:
    """`vbgm evaluate midi`: print (and optionally write) the per-folder metric table."""
    from vbgm.atomic import write_text_atomic

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
    print(md, end="")
    if args.md:
        write_text_atomic(args.md, md)
    if args.csv:
        write_text_atomic(args.csv, csv_text(rows))
    return 0
