"""Evaluation tables: per-song metric values → summary rows → markdown, CSV and the trade-off plot.

Everything here is pure (lists and dicts in, strings out) except `plot_tradeoff`, which writes one
image file; the generation and the file reading live in `vbgm.commands.evaluate`.

A summary row is a flat dict: its label columns, then for every metric key `k` the columns
`k_mean`, `k_std` and `k_n` (the mean and population std over the finite values, and how many
there were: a metric can be NaN for a song, e.g. density fidelity when the bar densities are all
equal). The same dict feeds the markdown table, the CSV and the plot.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np

from vbgm.song import DURATION, ONSET, Song

# (result key, column title) of the paper's three music metrics (`vbgm.metrics.MusicMetrics`).
MUSIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pitch_entropy", "Pitch entropy (bits)"),
    ("grooving_similarity", "Grooving similarity"),
    ("structureness", "Structureness (SI)"),
)
# (result key, column title, better direction) of the video–music fit (`vbgm.metrics.VideoFit`).
FIT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("density_fidelity", "Density fidelity", "↑"),
    ("strength_fidelity", "Strength error (notes)", "↓"),
    ("beat_hit_rate", "Beat hit rate", "↑"),
    ("beat_align", "Beat-align", "↑"),
    ("length_error_s", "Length error (s)", "↓"),
)
# The CMT paper's Table 1 (Di et al. 2021, LPD-5, whole songs): row → the three metrics.
PAPER_TABLE1: dict[str, tuple[float, float, float]] = {
    "Data": (4.452, 0.968, 0.488),
    "Baseline": (3.634, 0.677, 0.219),
    "CMT": (3.617, 0.810, 0.241),
}


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean and population std over the finite values, and their count (NaN, NaN, 0 if none)."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std()), len(v)


def crop_song(song: Song, n_sixteenths: int) -> Song:
    """The first `n_sixteenths` of a song: later notes dropped, held notes cut at the end.

    Used to compare real songs with generated ones of the same length (the metrics depend on
    length: more bars, more pairs for grooving similarity and longer repeats for structureness).
    """
    if n_sixteenths < 1:
        raise ValueError(f"crop length must be at least one sixteenth, got {n_sixteenths}")
    notes = song.notes[song.notes[:, ONSET] < n_sixteenths].copy()
    notes[:, DURATION] = np.minimum(notes[:, DURATION], n_sixteenths - notes[:, ONSET])
    return Song(notes=notes, n_sixteenths=n_sixteenths, genre=song.genre)


def summary_row(labels: dict[str, object], values: dict[str, Sequence[float]],
                keys: Iterable[str]) -> dict[str, object]:
    """`labels` followed by the mean, std and count of `values[k]` for every k in `keys`."""
    row = dict(labels)
    for k in keys:
        row[f"{k}_mean"], row[f"{k}_std"], row[f"{k}_n"] = mean_std(values.get(k, ()))
    return row


def _cell(row: dict[str, object], key: str, songs: int) -> str:
    """'mean ± std', with the count when some songs gave no value; 'n/a' when none did."""
    mean, std, n = row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"]
    if not n:
        return "n/a"
    text = f"{mean:.3f} ± {std:.3f}"
    return text if n == songs else f"{text} (n={n})"


def table1_markdown(rows: Sequence[dict[str, object]], note: str = "") -> str:
    """Table 1 as markdown: each metric as ours (mean ± std) beside the paper's value.

    Rows need "row" (Data / Baseline / CMT: the key into PAPER_TABLE1), "from" and "songs".
    `note` is added under the table (what was measured, how).
    """
    head = ["Row", "From", "Songs"]
    for _, title in MUSIC_COLUMNS:
        head += [title, "paper"]
    lines = ["| " + " | ".join(head) + " |",
             "|---|---|---:|" + "---:|---:|" * len(MUSIC_COLUMNS)]
    for row in rows:
        paper = PAPER_TABLE1.get(str(row["row"]))
        cells = [str(row["row"]), str(row["from"]), str(row["songs"])]
        for j, (key, _) in enumerate(MUSIC_COLUMNS):
            cells += [_cell(row, key, int(row["songs"])), f"{paper[j]:.3f}" if paper else ""]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    return text + (f"\n{note}\n" if note else "")


def fit_markdown(rows: Sequence[dict[str, object]], note: str = "") -> str:
    """The video evaluation as markdown: one row per control degree C, fit then music metrics.

    Rows need "control", "videos" and "songs"; cells are mean ± std over the songs.
    """
    head = ["C", "Videos", "Songs"] + [f"{title} {arrow}" for _, title, arrow in FIT_COLUMNS]
    head += [title for _, title in MUSIC_COLUMNS]
    n_metrics = len(FIT_COLUMNS) + len(MUSIC_COLUMNS)
    lines = ["| " + " | ".join(head) + " |", "|---:|---:|---:|" + "---:|" * n_metrics]
    keys = [k for k, _, _ in FIT_COLUMNS] + [k for k, _ in MUSIC_COLUMNS]
    for row in rows:
        cells = [f"{float(row['control']):g}", str(row["videos"]), str(row["songs"])]
        cells += [_cell(row, k, int(row["songs"])) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    return text + (f"\n{note}\n" if note else "")


def csv_text(rows: Sequence[dict[str, object]]) -> str:
    """Rows (dicts with the same keys) as CSV, header line first; floats with 6 digits."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buf.getvalue()


def plot_tradeoff(rows: Sequence[dict[str, object]], path: str | os.PathLike[str],
                  title: str = "") -> None:
    """Draw how fit and music metrics move with the control degree C, to an image file.

    Top row: the five fit metrics against C (mean ± std over the songs; the arrow says which way
    is better). Bottom row: the three music metrics against C, with the paper's real-data value
    (LPD-5) as a dashed line for scale, and the trade-off itself: beat-align (fit) on x against
    grooving similarity and structureness (music) on y, one point per C. The format follows the
    suffix (PNG, SVG, PDF); the file is written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vbgm.atomic import atomic_path

    c = np.array([float(r["control"]) for r in rows])
    order = np.argsort(c)
    rows = [rows[i] for i in order]
    c = c[order]

    def series(key: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([float(r[f"{key}_mean"]) for r in rows]),
                np.array([float(r[f"{key}_std"]) for r in rows]))

    fig = plt.figure(figsize=(16, 7.2), layout="constrained")
    grid = fig.add_gridspec(2, 5)
    fit_colour, music_colour = "#1f77b4", "#d62728"
    for j, (key, name, arrow) in enumerate(FIT_COLUMNS):
        ax = fig.add_subplot(grid[0, j])
        mean, std = series(key)
        ax.errorbar(c, mean, yerr=std, marker="o", color=fit_colour, capsize=3)
        ax.set_title(f"{name} ({arrow} better)", fontsize=10)
        ax.set_xlabel("control degree C")
        ax.set_xticks(c)
        ax.grid(alpha=0.3)
        if key in ("beat_hit_rate", "beat_align"):
            ax.set_ylim(-0.05, 1.05)
        elif key == "density_fidelity":
            ax.set_ylim(-1.05, 1.05)
            ax.axhline(0, color="grey", lw=0.8)
    data = PAPER_TABLE1["Data"]
    for j, (key, name) in enumerate(MUSIC_COLUMNS):
        ax = fig.add_subplot(grid[1, j])
        mean, std = series(key)
        ax.errorbar(c, mean, yerr=std, marker="s", color=music_colour, capsize=3)
        ax.axhline(data[j], color="grey", ls="--", lw=1, label="real data (paper, LPD-5)")
        ax.set_title(f"{name} (closer to data better)", fontsize=10)
        ax.set_xlabel("control degree C")
        ax.set_xticks(c)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.legend(fontsize=8, loc="best")
    ax = fig.add_subplot(grid[1, 3:])
    x, _ = series("beat_align")
    for key, name, marker in (("grooving_similarity", "grooving similarity", "o"),
                              ("structureness", "structureness", "s")):
        y, _ = series(key)
        ax.plot(x, y, marker=marker, label=name)
        for xi, yi, ci in zip(x, y, c):
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(f"C={ci:g}", (xi, yi), textcoords="offset points", xytext=(5, 4),
                            fontsize=8)
    ax.margins(x=0.1, y=0.12)  # room for the labels of the end points
    ax.set_xlabel("beat-align (fit to the video →)")
    ax.set_ylabel("music metric")
    ax.set_title("trade-off: fit vs music, one point per C", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(title or "Video–music fit and music metrics across the control degree C")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=os.path.splitext(os.fspath(path))[1][1:] or "png")
    plt.close(fig)
