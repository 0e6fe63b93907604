"""What the training corpus says each instrument may do: its register, its chord sizes, its kit.

The sampler's register and polyphony rules read these figures instead of hard-coded guesses.
They are measured from a prepared dataset (`measure`), written beside it (`stats.json`), stored in
every checkpoint trained on it, and shipped with the default model.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vbgm.errors import VbgmError
from vbgm.song import DRUMS, GM_PERCUSSION, INSTRUMENT, INSTRUMENTS, ONSET, PITCH, Song

# A drum key counts as part of the corpus kit when at least this share of drum notes use it.
KIT_MIN_SHARE = 0.001
# An instrument's register: these percentiles of its pitches in the corpus (bass 24-53, piano
# 41-83). With the 1st-99th (bass 23-63, piano 38-87) the songs of the clips spanned 50 semitones
# at C = 0.7 (real excerpts of their length 38-50; now 46) and 8.6 pitch classes at C = 1 (real
# 6.9-8.2; now 7.7), `benchmarks/bench_music.py`. Narrower registers cost pitch variety in
# Table 1 (`vbgm evaluate table1`, pitch entropy vs the data's at C = 0 / 0.7): 1st-99th -9 / -15 %,
# these -13 / -15 %, the 5th-95th -12 / -19 %.
REGISTER_PERCENTILES = (3, 97)
FILE_NAME = "stats.json"  # beside a prepared dataset
SHIPPED_NAME = "corpus_stats.json"  # in the package's assets, beside the default model


@dataclass(frozen=True)
class CorpusStats:
    """Per-instrument figures, indexed by instrument id 1..5 (index 0 unused).

    low, high: the register, `REGISTER_PERCENTILES` of pitch (pitched instruments; drums: the
        GM range).
    chord_p90, chord_p99: percentiles of the number of notes an instrument starts together.
    kit: drum keys the corpus uses (GM percussion keys only), by frequency.
    songs: how many songs were measured.
    """

    low: tuple[int, ...] = (0, 35, 36, 40, 28, 43)
    high: tuple[int, ...] = (127, 81, 84, 79, 55, 84)
    chord_p90: tuple[int, ...] = (0, 2, 3, 3, 1, 3)
    chord_p99: tuple[int, ...] = (0, 3, 4, 5, 2, 4)
    kit: tuple[int, ...] = (36, 38, 42, 46, 49, 51)
    songs: int = 0
    source: str = "built-in fallback"
    extra: dict = field(default_factory=dict)

    def pitch_mask(self, instrument: int) -> np.ndarray:
        """Boolean (128,) of the pitches (drum keys for drums) an instrument may play."""
        m = np.zeros(128, dtype=bool)
        if instrument == DRUMS:
            m[list(self.kit)] = True
        else:
            m[self.low[instrument]: self.high[instrument] + 1] = True
        return m

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CorpusStats:
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        except TypeError as exc:
            raise VbgmError(f"malformed corpus statistics ({exc})") from exc


def _group_sizes(notes: np.ndarray) -> np.ndarray:
    """Number of notes in each (onset, instrument) group of an instrument's notes."""
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    _, counts = np.unique(notes[:, ONSET], return_counts=True)
    return counts


def measure(songs: list[Song], source: str = "") -> CorpusStats:
    """Measure registers (`REGISTER_PERCENTILES` of pitch), chord-size percentiles and the drum kit
    over songs; an instrument no song has keeps the built-in fallback."""
    fallback = CorpusStats()
    pitches: dict[int, list[np.ndarray]] = {k: [] for k in range(1, len(INSTRUMENTS) + 1)}
    groups: dict[int, list[np.ndarray]] = {k: [] for k in pitches}
    for song in songs:
        for k in pitches:
            n = song.notes[song.notes[:, INSTRUMENT] == k]
            if len(n):
                pitches[k].append(n[:, PITCH])
                groups[k].append(_group_sizes(n))
    low, high = list(fallback.low), list(fallback.high)
    p90, p99 = list(fallback.chord_p90), list(fallback.chord_p99)
    kit = fallback.kit
    for k in pitches:
        if not pitches[k]:
            continue
        p = np.concatenate(pitches[k])
        g = np.concatenate(groups[k])
        p90[k], p99[k] = (int(np.ceil(np.percentile(g, q))) for q in (90, 99))
        if k == DRUMS:
            gm = p[(p >= GM_PERCUSSION[0]) & (p <= GM_PERCUSSION[1])]
            keys, counts = np.unique(gm, return_counts=True)
            used = counts >= KIT_MIN_SHARE * max(len(p), 1)
            kit = tuple(int(x) for x in keys[used][np.argsort(-counts[used], kind="stable")])
            low[k], high[k] = GM_PERCUSSION
        else:
            low[k], high[k] = (int(np.percentile(p, q)) for q in REGISTER_PERCENTILES)
    return CorpusStats(low=tuple(low), high=tuple(high), chord_p90=tuple(p90),
                       chord_p99=tuple(p99), kit=kit, songs=len(songs), source=source)


def measure_dataset(dataset) -> CorpusStats:
    """`measure` over the decoded training split of a prepared `vbgm.dataset.Dataset` (or any
    source of token rows with `tokens(i)` and `split(name)`; `source` is its `root`, if any)."""
    from vbgm.tokens import decode

    songs = [decode(np.asarray(dataset.tokens(i))) for i in dataset.split("train")]
    return measure(songs, source=str(getattr(dataset, "root", None) or ""))


def to_json(stats: CorpusStats) -> str:
    """The `stats.json` text: one field a line, so a diff of two corpora reads field by field."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in stats.to_dict().items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write(stats: CorpusStats, path: str | os.PathLike[str]) -> None:
    """Write `stats` to `path` atomically (see `to_json`)."""
    from vbgm.atomic import write_text_atomic

    write_text_atomic(path, to_json(stats))


def shipped() -> CorpusStats:
    """The statistics of the shipped model's training corpus (assets/corpus_stats.json)."""
    from importlib import resources

    return read(Path(str(resources.files("vbgm") / "assets" / SHIPPED_NAME)))


def read(path: str | os.PathLike[str]) -> CorpusStats:
    """Statistics from a `stats.json` (a dataset's)."""
    path = Path(path)
    try:
        return CorpusStats.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise VbgmError(f"{path}: unreadable corpus statistics ({exc})") from exc
