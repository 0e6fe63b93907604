"""Originality check: is a song a copy of a song of the training data?

Two views of a song, both transposition-invariant and both looked up in an index built once per
dataset (`build_index`, a few seconds; cached in a file):

- **Phrases**: per pitched track, its top line (the highest note at each onset) as events
  (interval to the next note in semitones, time to the next note in sixteenths up to 16); every
  run of `NGRAM` events is an n-gram. Per drum track, each bar's pattern (slot, key) and every
  two consecutive bars form a drum n-gram. The closest training songs are those sharing the most
  of the query's n-grams (as a share of the query's).
- **Copied passages**: per track and bar, the bar's notes (slot, pitch above the bar's lowest
  note, duration) as one signature; bars of fewer than `MIN_BAR_NOTES` notes have none. A copied
  passage is a run of consecutive bars of one query track whose signatures equal those of
  consecutive bars of one track of one training song, in order; the longest run is reported in
  bars and seconds. Drums are left out of passages (a rock beat is nobody's property).

Figures common to many songs (an n-gram or bar signature in more than `max_share` of the songs:
scales, repeated root notes, the basic beat) are idioms, not copies, and are ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vbgm.errors import VbgmError
from vbgm.song import DRUMS, DURATION, INSTRUMENT, ONSET, PITCH, SIXTEENTHS_PER_BAR, Song

NGRAM = 6  # events per phrase n-gram (7 notes)
MIN_BAR_NOTES = 4  # a bar signature needs this many notes of the track
FLAG_BARS = 6  # a copied passage this long (bars) flags the song (held-out real songs: ≤ 4)
INDEX_FORMAT, INDEX_VERSION = "vbgm-originality-index", 1
_P = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the rolling hash


def _hash_bytes(data: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little"))


def _rolling(codes: np.ndarray, n: int, salt: int) -> np.ndarray:
    """uint64 hash of every window of `n` consecutive codes (wrapping arithmetic: stable)."""
    if len(codes) < n:
        return np.zeros(0, np.uint64)
    c = codes.astype(np.uint64)
    h = np.full(len(c) - n + 1, np.uint64(salt), np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _P + c[j: len(c) - n + 1 + j]
    return h


def top_line(notes: np.ndarray) -> np.ndarray:
    """(onset, pitch) of the highest note at each onset of one track's notes."""
    if len(notes) == 0:
        return np.zeros((0, 2), np.int64)
    order = np.lexsort((-notes[:, PITCH], notes[:, ONSET]))
    n = notes[order]
    first = np.r_[True, n[1:, ONSET] != n[:-1, ONSET]]
    return n[first][:, [ONSET, PITCH]].astype(np.int64)


def phrase_ngrams(song: Song) -> np.ndarray:
    """The unique n-gram hashes of a song: (interval, time to next) phrases of each pitched
    track's top line and two-bar patterns of its drums."""
    out = []
    notes = song.notes
    for k in song.instruments:
        sel = notes[notes[:, INSTRUMENT] == k]
        if k == DRUMS:
            bars = _bar_signatures(sel, drums=True)
            if len(bars) >= 2:
                codes = np.array([h for _, h in bars], np.uint64)
                index = np.array([b for b, _ in bars])
                pairs = np.flatnonzero(np.diff(index) == 1)  # consecutive bars only
                with np.errstate(over="ignore"):
                    out.append(codes[pairs] * _P + codes[pairs + 1] + np.uint64(7))
            continue
        line = top_line(sel)
        if len(line) < NGRAM + 1:
            continue
        interval = np.clip(np.diff(line[:, 1]), -60, 60) + 64
        ioi = np.minimum(np.diff(line[:, 0]), 16)
        out.append(_rolling(interval * 32 + ioi, NGRAM, salt=1))
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.uint64)


def _bar_signatures(notes: np.ndarray, drums: bool = False) -> list[tuple[int, np.uint64]]:
    """(bar, signature hash) of each bar of one track with at least MIN_BAR_NOTES notes."""
    if len(notes) == 0:
        return []
    bars = notes[:, ONSET] // SIXTEENTHS_PER_BAR
    order = np.lexsort((notes[:, PITCH], notes[:, ONSET]))
    notes, bars = notes[order], bars[order]
    cuts = np.flatnonzero(np.diff(bars)) + 1
    out = []
    for chunk, b in zip(np.split(notes, cuts), bars[np.r_[0, cuts]]):
        if len(chunk) < MIN_BAR_NOTES:
            continue
        slot = chunk[:, ONSET] % SIXTEENTHS_PER_BAR
        if drums:
            sig = np.stack([slot, chunk[:, PITCH]], axis=1)
        else:
            sig = np.stack([slot, chunk[:, PITCH] - chunk[:, PITCH].min(),
                            np.minimum(chunk[:, DURATION], 16)], axis=1)
        out.append((int(b), _hash_bytes(sig.astype("<i2").tobytes() + bytes([drums]))))
    return out


def bar_signatures(song: Song) -> np.ndarray:
    """(track, bar, hash) rows, as uint64 (n, 3), of every signed bar of each pitched track."""
    rows = []
    for k in song.instruments:
        if k == DRUMS:
            continue
        for b, h in _bar_signatures(song.notes[song.notes[:, INSTRUMENT] == k]):
            rows.append((k, b, h))
    return np.array(rows, np.uint64).reshape(-1, 3)


# ----------------------------------------------------------------------------------- the index
@dataclass
class Index:
    """Postings of every training song's n-grams and bar signatures, sorted by hash."""

    sources: list[str]
    ngram_hash: np.ndarray  # uint64, sorted
    ngram_song: np.ndarray  # int32
    bar_hash: np.ndarray  # uint64, sorted
    bar_song: np.ndarray  # int32
    bar_track: np.ndarray  # int8
    bar_index: np.ndarray  # int32
    fingerprint: str = ""
    meta: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the index (npz) atomically."""
        from vbgm.atomic import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, ngram_hash=self.ngram_hash, ngram_song=self.ngram_song,
                     bar_hash=self.bar_hash, bar_song=self.bar_song, bar_track=self.bar_track,
                     bar_index=self.bar_index,
                     meta=np.frombuffer(json.dumps({
                         "format": INDEX_FORMAT, "version": INDEX_VERSION,
                         "fingerprint": self.fingerprint, "sources": self.sources,
                         **self.meta}).encode(), np.uint8))

    @classmethod
    def load(cls, path: Path) -> Index:
        """Read an index written by `save`; VbgmError naming the file when it is not one."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("format") != INDEX_FORMAT or meta.get("version") != INDEX_VERSION:
                    raise ValueError("not a vbgm originality index of this version")
                arrays = {k: z[k] for k in ("ngram_hash", "ngram_song", "bar_hash", "bar_song",
                                            "bar_track", "bar_index")}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise VbgmError(f"{path}: unreadable originality index ({exc})") from exc
        sources = meta.pop("sources")
        return cls(sources=sources, fingerprint=meta.pop("fingerprint", ""), meta=meta,
                   **arrays)


def dataset_fingerprint(root: Path) -> str:
    """Identifies a prepared dataset's content (its index file and token file sizes/times)."""
    h = hashlib.blake2b(digest_size=8)
    for name in ("index.json", "tokens.npy"):
        st = (root / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def build_index(dataset_dir: str | os.PathLike[str], splits: tuple[str, ...] = ("train",)
                ) -> Index:
    """The index of every song of `splits` of a prepared dataset (by default the training split:
    the songs a model trained on it has seen)."""
    from vbgm.dataset import Dataset
    from vbgm.tokens import decode

    root = Path(dataset_dir)
    ds = Dataset.load(root)
    ids = [i for name in splits for i in ds.split(name)]
    ng_h, ng_s, bar_rows, sources = [], [], [], []
    for j, i in enumerate(ids):
        song = decode(np.asarray(ds.tokens(i)))
        sources.append(ds.songs[i].source)
        h = phrase_ngrams(song)
        ng_h.append(h)
        ng_s.append(np.full(len(h), j, np.int32))
        rows = bar_signatures(song)
        bar_rows.append(np.column_stack([rows, np.full(len(rows), j, np.uint64)]))
    ng_h_all, ng_s_all = np.concatenate(ng_h), np.concatenate(ng_s)
    order = np.argsort(ng_h_all, kind="stable")
    bars = np.concatenate(bar_rows) if bar_rows else np.zeros((0, 4), np.uint64)
    border = np.argsort(bars[:, 2], kind="stable")
    bars = bars[border]
    return Index(sources=sources, ngram_hash=ng_h_all[order], ngram_song=ng_s_all[order],
                 bar_hash=bars[:, 2].copy(), bar_song=bars[:, 3].astype(np.int32),
                 bar_track=bars[:, 0].astype(np.int8), bar_index=bars[:, 1].astype(np.int32),
                 fingerprint=dataset_fingerprint(root), meta={"splits": list(splits)})


def default_index_path(dataset_dir: Path) -> Path:
    """Where the index of a dataset is cached: $XDG_CACHE_HOME/vbgm (default ~/.cache/vbgm),
    named by the dataset's fingerprint, so the dataset folder itself is never written."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vbgm"
    return cache / f"originality-{dataset_fingerprint(dataset_dir)}.npz"


def load_or_build(dataset_dir: str | os.PathLike[str], index_path: Path | None = None,
                  log=None) -> Index:
    """The dataset's index from `index_path` (default `default_index_path`), built and saved
    there first when missing or made for other data."""
    root = Path(dataset_dir)
    if not (root / "index.json").is_file():
        raise VbgmError(f"{root}: not a vbgm dataset (no index.json); make one with "
                        f"`vbgm prepare`")
    path = index_path or default_index_path(root)
    if path.is_file():
        index = Index.load(path)
        if index.fingerprint == dataset_fingerprint(root):
            return index
    if log:
        log(f"indexing {root} for the originality check (once) -> {path}")
    index = build_index(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    index.save(path)
    return index


# ------------------------------------------------------------------------------------ checking
@dataclass
class Match:
    """One training song close to the query."""

    source: str
    shared: float  # share of the query's phrase n-grams this song has too
    longest_bars: int  # longest passage copied from it (bars)
    query_bar: int = 0  # where that passage starts in the query ...
    song_bar: int = 0  # ... and in the training song


@dataclass
class Report:
    """What `check` found: the closest songs and the longest copied passage."""

    closest: list[Match]
    longest_bars: int
    longest_seconds: float
    n_ngrams: int
    flagged: bool

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"flagged": self.flagged, "longest_copied_bars": self.longest_bars,
                "longest_copied_seconds": round(self.longest_seconds, 2),
                "n_ngrams": self.n_ngrams,
                "closest": [m.__dict__ for m in self.closest]}

    def lines(self) -> list[str]:
        """Human-readable summary, one finding per line."""
        verdict = (f"COPIED: a passage of {self.longest_bars} bars "
                   f"({self.longest_seconds:.1f} s) matches a training song"
                   if self.flagged else
                   f"original: the longest passage shared with a training song is "
                   f"{self.longest_bars} bar(s) ({self.longest_seconds:.1f} s)")
        out = [verdict]
        for m in self.closest:
            where = (f", {m.longest_bars} bars from bar {m.query_bar} = its bar {m.song_bar}"
                     if m.longest_bars else "")
            out.append(f"  {m.shared:6.1%} of phrases shared  {m.source}{where}")
        return out


def _lookup(sorted_hash: np.ndarray, songs: np.ndarray, query: np.ndarray, max_songs: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """(query position, posting position) of every posting of each query hash found in at most
    `max_songs` distinct songs (more: an idiom). Postings are sorted by hash, then by song, so
    the distinct songs of a hash are its song changes; a song repeating a figure many times
    over is still one song."""
    lo = np.searchsorted(sorted_hash, query, side="left")
    hi = np.searchsorted(sorted_hash, query, side="right")
    count = hi - lo
    first = np.r_[True, (sorted_hash[1:] != sorted_hash[:-1]) | (songs[1:] != songs[:-1])]
    seen = np.cumsum(first)  # distinct (hash, song) pairs up to and including each posting
    distinct = np.where(count > 0, seen[np.maximum(hi - 1, 0)] - seen[np.minimum(lo, len(seen) - 1)]
                        + 1, 0) if len(seen) else np.zeros_like(count)
    keep = (count > 0) & (distinct <= max_songs)
    q = np.repeat(np.flatnonzero(keep), count[keep])
    starts = np.repeat(lo[keep], count[keep])
    offsets = np.arange(len(q)) - np.repeat(np.cumsum(count[keep]) - count[keep], count[keep])
    return q, starts + offsets


def check(song: Song, index: Index, tempo_bpm: float = 120.0, top: int = 5,
          max_share: float = 0.01, flag_bars: int = FLAG_BARS) -> Report:
    """Compare `song` with every song of `index` (see the module doc)."""
    n_songs = max(len(index.sources), 1)
    max_songs = max(2, int(max_share * n_songs))
    grams = phrase_ngrams(song)
    _, pos = _lookup(index.ngram_hash, index.ngram_song, grams, max_songs)
    shared = np.bincount(index.ngram_song[pos], minlength=n_songs) / max(len(grams), 1)

    rows = bar_signatures(song)
    best = np.zeros(n_songs, np.int64)
    where: dict[int, tuple[int, int]] = {}
    if len(rows):
        qi, pos = _lookup(index.bar_hash, index.bar_song, rows[:, 2], max_songs)
        if len(qi):
            q_track, q_bar = rows[qi, 0].astype(np.int64), rows[qi, 1].astype(np.int64)
            s, t = index.bar_song[pos].astype(np.int64), index.bar_track[pos].astype(np.int64)
            b = index.bar_index[pos].astype(np.int64)
            diag = b - q_bar
            order = np.lexsort((q_bar, diag, q_track, t, s))
            key = np.stack([s, t, q_track, diag], axis=1)[order]
            qb = q_bar[order]
            new_run = np.r_[True, np.any(key[1:] != key[:-1], axis=1) | (np.diff(qb) != 1)]
            run_id = np.cumsum(new_run) - 1
            run_len = np.bincount(run_id)
            run_start = np.flatnonzero(new_run)
            for r in np.argsort(-run_len, kind="stable"):
                song_id = int(key[run_start[r], 0])
                if run_len[r] > best[song_id]:
                    best[song_id] = run_len[r]
                    qs = int(qb[run_start[r]])
                    where[song_id] = (qs, qs + int(key[run_start[r], 3]))
    rank = np.lexsort((-shared, -best))[:top] if n_songs else []
    closest = [Match(source=index.sources[i], shared=float(shared[i]),
                     longest_bars=int(best[i]), query_bar=where.get(int(i), (0, 0))[0],
                     song_bar=where.get(int(i), (0, 0))[1])
               for i in rank if shared[i] > 0 or best[i] > 0]
    longest = int(best.max()) if len(best) else 0
    return Report(closest=closest, longest_bars=longest,
                  longest_seconds=longest * 240.0 / tempo_bpm, n_ngrams=len(grams),
                  flagged=longest >= flag_bars)


def read_song(path: str | os.PathLike[str]) -> tuple[Song, float]:
    """(the Song, its first tempo in bpm) of a MIDI file to check; every instrument is kept,
    however few its notes. VbgmError naming the file when it cannot be read."""
    import symusic

    from vbgm.midi import QuantizeConfig, load_song

    path = Path(path)
    if not path.is_file():
        raise VbgmError(f"{path}: no such MIDI file")
    song, _ = load_song(path, QuantizeConfig(min_notes=0))
    try:
        tempos = symusic.Score(str(path)).tempos
    except Exception as exc:  # load_song has read it; this cannot fail but for a race
        raise VbgmError(f"{path}: not a readable MIDI file ({exc})") from exc
    return song, float(tempos[0].qpm) if len(tempos) else 120.0
