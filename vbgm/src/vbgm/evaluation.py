"""The library behind `vbgm evaluate`: measure songs, folders, held-out data, generated songs and
videos, then turn the per-song values into summary rows, markdown, CSV and the trade-off plot.

The command module (`vbgm.commands.evaluate`) only parses arguments, calls these and prints.
The table helpers are pure (lists and dicts in, strings out); `plot_tradeoff` writes one image.

A summary row is a flat dict: its label columns, then for every metric key `k` the columns
`k_mean`, `k_std` and `k_n` (the mean and population std over the finite values, and how many
there were: a metric can be NaN for a song, e.g. density fidelity when the bar densities are all
equal). The same dict feeds the markdown tables, the CSV and the plot.

Every song is measured with `song_metrics`: the paper's three (`MUSIC_COLUMNS`) and the fourteen
musicality measurements (`vbgm.metrics.MUSICALITY`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vbgm.corpus_stats import CorpusStats
from vbgm.errors import VbgmError
from vbgm.metrics import MUSICALITY, music_metrics, musicality, realised_bar_density, video_fit
from vbgm.song import DURATION, ONSET, SIXTEENTHS_PER_BAR, Song

if TYPE_CHECKING:
    from vbgm.request import Request
    from vbgm.sampling import Controls

# (result key, column title) of the paper's three music metrics (`vbgm.metrics.MusicMetrics`).
MUSIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pitch_entropy", "Pitch entropy (bits)"),
    ("grooving_similarity", "Grooving similarity"),
    ("structureness", "Structureness (SI)"),
)
# Every per-song music measurement: the paper's three, then the musicality ones.
SONG_COLUMNS: tuple[tuple[str, str], ...] = MUSIC_COLUMNS + MUSICALITY
SONG_KEYS: tuple[str, ...] = tuple(k for k, _ in SONG_COLUMNS)
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
MIDI_SUFFIXES = (".mid", ".midi")
CHECKPOINT_NAMES = ("model.pt", "best.pt", "last.pt")  # in order of preference in a run folder


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


def relative_gap(reference: float, value: float) -> float:
    """(value − reference) / |reference|: how far a measurement lies from the reference's, as a
    share of it (+0.25 = 25 % above). NaN when either is undefined or the reference is 0."""
    if not (math.isfinite(reference) and math.isfinite(value)) or reference == 0:
        return math.nan
    return (value - reference) / abs(reference)


def _number(value: float) -> str:
    """A mean for the transposed tables: 3 decimals, 2 from 10 up (pitches, semitones)."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.3f}"


def _has_keys(rows: Sequence[dict[str, object]], columns: Sequence[tuple[str, str]]) -> bool:
    return any(f"{k}_mean" in row for row in rows for k, _ in columns)


def means_markdown(rows: Sequence[dict[str, object]], names: Sequence[str],
                   columns: Sequence[tuple[str, str]] = SONG_COLUMNS,
                   reference: int | None = None) -> str:
    """Summary rows transposed: one line per measurement, one column per row (its mean).

    Many measurements read better down the page than across it. With `reference` (a row index),
    one more column per other row: its relative gap to the reference, (row − ref)/|ref| in %.
    Cells are padded so the columns line up in a terminal (the text is still markdown).
    """
    if len(names) != len(rows):
        raise ValueError(f"{len(rows)} rows but {len(names)} names")
    others = [i for i in range(len(rows)) if i != reference] if reference is not None else []
    head = ["Measurement", *names] + [f"{names[i]} vs {names[reference]}" for i in others]
    body = []
    for key, title in columns:
        means = [float(row.get(f"{key}_mean", math.nan)) for row in rows]
        gaps = [relative_gap(means[reference], means[i]) for i in others]
        body.append([title] + [_number(m) for m in means]
                    + [f"{100 * g:+.1f}%" if math.isfinite(g) else "n/a" for g in gaps])
    widths = [max(len(line[j]) for line in (head, *body)) for j in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if j == 0 else c.rjust(w)
                                 for j, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":"
                          for j, w in enumerate(widths)) + "|"
    return "\n".join([fmt(head), rule, *(fmt(line) for line in body)]) + "\n"


def table1_markdown(rows: Sequence[dict[str, object]], note: str = "") -> str:
    """Table 1 as markdown: each metric as ours (mean ± std) beside the paper's value.

    Rows need "row" (Data / Baseline / CMT: the key into PAPER_TABLE1), "from" and "songs".
    Rows that carry the musicality measurements get a second, transposed table of every music
    measurement's mean per row, with the gap of each other row to the Data row.
    `note` is added under the tables (what was measured, how).
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
    if _has_keys(rows, MUSICALITY):
        names = [str(row["row"]) for row in rows]
        ref = names.index("Data") if "Data" in names else None
        text += ("\nEvery music measurement, mean per row"
                 + (" (gap = (row − Data) / |Data|)" if ref is not None else "") + ":\n\n"
                 + means_markdown(rows, names, SONG_COLUMNS, ref))
    return text + (f"\n{note}\n" if note else "")


def fit_markdown(rows: Sequence[dict[str, object]], note: str = "") -> str:
    """The video evaluation as markdown: one row per control degree C, fit then music metrics.

    Rows need "control", "videos" and "songs"; cells are mean ± std over the songs. Rows that
    carry the musicality measurements get a second, transposed table of their means per C.
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
    if _has_keys(rows, MUSICALITY):
        names = [f"C={float(row['control']):g}" for row in rows]
        text += "\nMusicality, mean per C:\n\n" + means_markdown(rows, names, MUSICALITY)
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


# ---------------------------------------------------------------------------------------------
# Songs and folders of MIDI files (`vbgm evaluate midi`)


def song_metrics(song: Song, tempo: float, si_source: str = "notes",
                 si_range: str = "short") -> dict[str, float]:
    """Every music measurement of one song (keys SONG_KEYS): the paper's three, with structureness
    at `tempo` over `si_range` from `si_source`, then the fourteen musicality measurements."""
    return {**asdict(music_metrics(song, tempo, si_source=si_source, si_range=si_range)),
            **musicality(song)}


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
    """Every music measurement of every MIDI file under `folder` (the first `limit` by path);
    files that cannot be read or measured land in `.skipped` with the reason."""
    from tqdm import tqdm

    from vbgm.midi import read_midi

    files = midi_files(folder)[:limit]
    result = FolderResult(folder, {key: [] for key in SONG_KEYS})
    for path in tqdm(files, desc=folder.name or str(folder), unit="file", disable=not progress):
        try:
            song = read_midi(path)
            bpm = tempo if tempo is not None else file_tempo(path)
            values = song_metrics(song, bpm, si_source, si_range)
        except VbgmError as exc:
            result.skipped.append((path, str(exc)))
            continue
        except Exception as exc:  # a file the readers choke on must not end a long evaluation
            result.skipped.append((path, f"{path}: {type(exc).__name__}: {exc}"))
            continue
        for key in SONG_KEYS:
            result.values[key].append(values[key])
    return result


def table_rows(results: Sequence[FolderResult]) -> list[dict[str, object]]:
    """One summary row per folder: folder, files, skipped, then every measurement's mean/std/n."""
    return [summary_row({"folder": str(r.folder), "files": r.n_files, "skipped": len(r.skipped)},
                        r.values, SONG_KEYS) for r in results]


def folder_names(folders: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Short column names for folders: their last component, or the whole path when two share
    it (or it is empty)."""
    short = [Path(f).name for f in folders]
    if "" in short or len(set(short)) != len(short):
        return [str(f) for f in folders]
    return short


def markdown_table(rows: Sequence[dict[str, object]]) -> str:
    """`vbgm evaluate midi`'s tables: the paper's three metrics per folder (mean ± std), then
    every measurement's mean with one column per folder; with exactly two folders (REAL
    GENERATED) a last column gives the relative gap (generated − real) / |real|."""
    head = ["Folder", "Files", "Skipped"] + [title for _, title in MUSIC_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * len(MUSIC_COLUMNS)]
    for row in rows:
        cells = [str(row["folder"]), str(row["files"]), str(row["skipped"])]
        for key, _ in MUSIC_COLUMNS:
            mean, std = row[f"{key}_mean"], row[f"{key}_std"]
            cells.append("n/a" if not math.isfinite(mean) else f"{mean:.3f} ± {std:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if not _has_keys(rows, MUSICALITY):
        return text
    names = folder_names([str(row["folder"]) for row in rows])
    pair = len(rows) == 2
    caption = "Every measurement, mean per folder" + (
        f" (gap = ({names[1]} − {names[0]}) / |{names[0]}|)" if pair else "")
    return text + f"\n{caption}:\n\n" + means_markdown(rows, names, SONG_COLUMNS,
                                                       0 if pair else None)


# ---------------------------------------------------------------------------------------------
# Checkpoints, held-out data and free generation (`vbgm evaluate table1`)


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


def table1_length(bars: int, seconds: float | None, tempo: float) -> int:
    """Song length in sixteenths from --bars, or from --seconds at --tempo."""
    if not 20 <= tempo <= 300:
        raise VbgmError(f"--tempo {tempo:g} is out of range (20..300 bpm)")
    if seconds is not None:
        if not (seconds > 0 and math.isfinite(seconds)):
            raise VbgmError(f"--seconds must be positive, got {seconds}")
        return max(1, math.ceil(seconds * tempo / 15.0 - 1e-9))
    if bars < 1:
        raise VbgmError(f"--bars must be at least 1, got {bars}")
    return bars * SIXTEENTHS_PER_BAR


def held_out_songs(dataset, n: int, n_sixteenths: int, seed: int = 0) -> list[tuple[int, Song]]:
    """(song id, Song) of up to n test-split songs of a `vbgm.dataset.Dataset`, each cut to its
    first n_sixteenths.

    Only songs at least that long are eligible (a shorter one would measure a different length
    than the generated clips); n of them are drawn with a seeded RNG, so that the sample mixes
    the sources rather than taking the first folder, and returned in id order.
    """
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


def guide_controls(song: Song, n_sixteenths: int) -> Controls:
    """Controls that ask for a real song's rhythm: its per-bar density (onset slots + 1)."""
    from vbgm.sampling import Controls

    n_bars = -(-n_sixteenths // SIXTEENTHS_PER_BAR)
    return Controls(n_sixteenths=n_sixteenths,
                    bar_density=realised_bar_density(song, n_bars) + 1)


def generate_free(model, n: int, n_sixteenths: int, seed: int = 0, batch: int = 8,
                  progress=None, stats: CorpusStats | None = None, control: float = 0.0,
                  guides: Sequence[Song] = (), request: Request | None = None,
                  auto_key: bool = False) -> list[Song]:
    """n songs of n_sixteenths generated without controls (C = 0), `batch` at a time; with
    control C > 0, song i follows the bar densities of `guides[i]` (cycled) with degree C.

    Batch k uses seed `seed * 1_000_003 + k`, so runs are reproducible and two seeds do not
    share batches. Every candidate of a batch is kept (no best-of selection). `progress`: a
    tqdm-like object whose update(k) is called per batch. `stats`: the model's corpus
    statistics (`vbgm.pipeline.load_model_and_stats`; None = the shipped ones).
    request: genre, instruments and key (default: any genre, every instrument, no key plan);
    auto_key: a request without a key gets, per batch, the one `vbgm compose --key auto` picks
    for the batch's seed (`controls.auto_key_without_video`).
    """
    from vbgm.controls import auto_key_without_video
    from vbgm.sampling import Controls, Request, SamplingConfig, generate

    if control > 0 and not guides:
        raise VbgmError("controlled generation needs songs to take the controls from")
    request = request or Request()
    config = SamplingConfig(control=control)
    songs = []
    step = 1 if control > 0 else batch  # each guided song has its own controls
    for k, start in enumerate(range(0, n, step)):
        size = min(step, n - start)
        controls = (guide_controls(guides[start % len(guides)], n_sixteenths) if control > 0
                    else Controls(n_sixteenths=n_sixteenths))
        batch_seed = seed * 1_000_003 + k
        asked = (replace(request, key=auto_key_without_video(batch_seed))
                 if auto_key and request.key is None else request)
        gens = generate(model, controls, asked, config, candidates=size, seed=batch_seed,
                        stats=stats)
        songs += [g.song for g in gens]
        if progress is not None:
            progress.update(size)
    return songs


def measure_songs(songs: Iterable[Song], tempo: float,
                  each: Callable[[], object] | None = None) -> dict[str, list[float]]:
    """SONG_KEYS → the value of every song, in order (`song_metrics` at `tempo`); `each` is
    called after every song (a progress hook)."""
    values: dict[str, list[float]] = {k: [] for k in SONG_KEYS}
    for song in songs:
        for k, v in song_metrics(song, tempo).items():
            values[k].append(v)
        if each is not None:
            each()
    return values


def table1_values(data: Sequence[Song], models: dict[str, object], n: int, n_sixteenths: int,
                  tempo: float, seed: int = 0, batch: int = 8, progress: bool = False,
                  stats: dict[str, CorpusStats] | None = None,
                  controls: dict[str, float] | None = None,
                  request: Request | None = None, auto_key: bool = False
                  ) -> tuple[dict[str, list[Song]], dict[str, dict[str, list[float]]]]:
    """Table 1's songs and per-song values: row "Data" = the held-out `data`, then one row per
    model ("Baseline", "CMT": name → loaded model) of n songs generated freely, each with its
    own corpus statistics (`stats`: name → statistics; a missing name uses the shipped ones).
    `controls`: row → control degree C; a row with C > 0 follows the Data songs' bar densities.
    request, auto_key: what every generated row asks for (`generate_free`).

    Returns (row → songs, row → SONG_KEYS → values). A progress bar on stderr when `progress`.
    """
    from tqdm import tqdm

    songs: dict[str, list[Song]] = {"Data": list(data)}
    values: dict[str, dict[str, list[float]]] = {}
    with tqdm(total=len(data) + len(models) * n, desc="table1", unit="song",
              disable=not progress, file=sys.stderr) as bar:
        bar.set_postfix_str("Data")
        values["Data"] = measure_songs(songs["Data"], tempo, lambda: bar.update(1))
        for row, model in models.items():
            bar.set_postfix_str(row)
            songs[row] = generate_free(model, n, n_sixteenths, seed, batch, bar,
                                       (stats or {}).get(row), (controls or {}).get(row, 0.0),
                                       songs["Data"], request, auto_key)
            values[row] = measure_songs(songs[row], tempo)
    return songs, values


# ---------------------------------------------------------------------------------------------
# Videos (`vbgm evaluate video`)


def measure_fit(song: Song, analysis, request) -> dict[str, float]:
    """Fit and music metrics of one song generated for one analysed video.

    Visual beats are those with strength > 0 (the ones the sampler may force), at their integer
    sixteenth (the grid the music lives on); strength is checked on the request's rhythm
    instruments (those the forced beats go to).
    """
    beats = np.array([(b.sixteenth, b.strength) for b in analysis.beats if b.strength > 0],
                     dtype=np.int64).reshape(-1, 2)
    fit = video_fit(song, np.array([b.density for b in analysis.bars]), beats[:, 0],
                    beats[:, 1], analysis.tempo_bpm, analysis.duration_s,
                    instruments=request.rhythm_instruments)
    return {**asdict(fit), **song_metrics(song, analysis.tempo_bpm)}


@dataclass
class VideoResult:
    """Per-song values at every control degree C, the videos used and those skipped."""

    values: dict[float, dict[str, list[float]]]
    used: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def video_values(videos: Sequence[Path], model, controls_c: Sequence[float], samples: int = 1,
                 seed: int = 0, tempo: float | None = None, progress: bool = False,
                 stats: CorpusStats | None = None, request: Request | None = None,
                 auto_key: bool = False) -> VideoResult:
    """Analyse every video once, generate `samples` songs for it at each C (same seed at every C)
    and measure each (`measure_fit`). A video that cannot be analysed is skipped with its reason.
    `stats`: the model's corpus statistics (`vbgm.pipeline.load_model_and_stats`; None = the
    shipped ones). request: genre, instruments and key (default: none asked); auto_key: a
    request without a key gets the video's, as `vbgm generate --key auto` picks it
    (`controls.video_auto_key`).
    """
    from tqdm import tqdm

    from vbgm.controls import video_auto_key
    from vbgm.sampling import Controls, Request, SamplingConfig, generate
    from vbgm.video import analyze

    request = request or Request()
    keys = [k for k, _, _ in FIT_COLUMNS] + list(SONG_KEYS)
    result = VideoResult({c: {k: [] for k in keys} for c in controls_c})
    for video in tqdm(videos, desc="videos", unit="video", disable=not progress,
                      file=sys.stderr):
        try:
            analysis = analyze(video, tempo=tempo)
        except VbgmError as exc:
            result.skipped.append(str(exc))
            continue
        result.used.append(video)
        controls = Controls.from_analysis(analysis)
        asked = request
        if auto_key and request.key is None:  # this video's key, as `generate` picks it
            asked = replace(request, key=video_auto_key(analysis, seed))
        for c in controls_c:
            gens = generate(model, controls, asked, SamplingConfig(control=c),
                            candidates=samples, seed=seed, stats=stats)
            for g in gens:
                for k, v in measure_fit(g.song, analysis, asked).items():
                    result.values[c][k].append(v)
    return result
