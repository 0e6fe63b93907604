"""The prepared dataset on disk, and `prepare()` that builds it from folders of MIDI files.

Layout of DATASET_DIR:
- `index.json`: {"format": "vbgm-dataset", "version": 1, "config": {...}, "songs": [{"id",
  "source", "genre", "instruments", "bars", "n_sixteenths", "tokens", "offset", "split",
  "licence", "composer", "key", "key_clarity"}]}
- `tokens.npy`: int32 (sum of tokens, 9), every song's rows (EOS included) in index order;
- `report.json`: files seen, kept, skipped (each with its reason), songs cut at a metre change,
  songs per licence;
- `stats.json`: `vbgm.corpus_stats` of the train split (registers, chord sizes, drum kit), which
  `vbgm train` stores in its checkpoints for the sampler.

`source` is the file's path relative to the parent of the MIDI_DIR it was found in
("midi/pop909/001.mid"). The split is by song, from a hash of the path relative to its MIDI_DIR:
90 % train, 5 % valid, 5 % test, the same on every run and machine. The whole folder is built
next to the target and renamed into place, so a crash never leaves a half-written dataset and a
re-run over the same inputs gives byte-identical files.

`licence` is the licence of the song's source folder (`DATA_SOURCES`, "unknown" for other
folders), or the file's own where an `AUTHORS.md` beside it names it (EasyRPG's per-file credits,
which also give the `composer`). `key` (0..23, `vbgm.harmony` numbering; -1 when the song has no
pitched note) and `key_clarity` come from the duration-weighted pitch-class histogram of the
song's non-drum notes. Indexes written before these fields existed load with their defaults.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vbgm import corpus_stats
from vbgm.errors import VbgmError
from vbgm.harmony import detect_key
from vbgm.metrics import pitch_class_durations
from vbgm.midi import UNREADABLE, QuantizeConfig, SkipSong, load_song
from vbgm.song import GENRE_IDS, GENRES, Song
from vbgm.tokens import decode, encode, init_tokens
from vbgm.vocab import N_FIELDS

FORMAT, VERSION = "vbgm-dataset", 1
SPLITS = ("train", "valid", "test")
TOO_MANY_TOKENS = "too-many-tokens"
MIDI_SUFFIXES = (".mid", ".midi")
UNKNOWN_LICENCE = "unknown"
AUTHORS_FILE = "AUTHORS.md"
NO_KEY = -1


class DataSource(NamedTuple):
    """A known corpus folder: its licence, a display name and where it comes from."""

    licence: str
    name: str
    origin: str


# Folder names as in ../shared/data/SOURCES.md; a song belongs to the deepest folder of its
# `source` path found here.
DATA_SOURCES: dict[str, DataSource] = {
    "pop909": DataSource("MIT", "POP909", "github.com/music-x-lab/POP909-Dataset"),
    "freedoom": DataSource("BSD-3-Clause", "Freedoom music",
                           "github.com/freedoom/freedoom musics/ (composers in CREDITS-MUSIC)"),
    "simutrans": DataSource("Artistic License", "Simutrans music",
                            "github.com/aburch/simutrans simutrans/music/, © The Simutrans Team"),
    "groove": DataSource("CC-BY-4.0", "Groove MIDI Dataset v1.0.0 (Magenta)",
                         "magenta.tensorflow.org/datasets/groove, via "
                         "github.com/zharry29/drums-with-llm"),
    "lmd_samples": DataSource("MIT / CC-BY-4.0", "Lakh-style MIDI samples",
                              "github.com/Natooz/MidiTok test files (Lakh MIDI Dataset kind)"),
    "easyrpg": DataSource("CC-BY-4.0", "EasyRPG RTP music",
                          "github.com/EasyRPG/RTP (per-file credits in AUTHORS.md)"),
    "crystal_picnic": DataSource("zlib", "Crystal Picnic music",
                                 "github.com/Cloudxtreme/crystal-picnic, © 2015 Nooskewl"),
}

# Licence tags of AUTHORS.md ("[CC-BY]", "[cc0]") -> the licence names the index stores.
AUTHOR_LICENCE_TAGS = {"cc-by": "CC-BY-4.0", "cc0": "CC0-1.0"}


@dataclass
class PrepareConfig:
    """What `prepare` keeps and how it labels it.

    max_tokens: songs with more rows (EOS included) are skipped, as the reference's 10,000 pad.
    genres: folder prefix relative to a MIDI_DIR ("" = everything) -> genre code; the longest
        matching prefix wins; a labels file entry wins over all of them.
    split_percent: train / valid / test shares of the hash buckets.
    """

    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    max_tokens: int = 10_000
    genres: dict[str, int] = field(default_factory=dict)
    split_percent: tuple[int, int, int] = (90, 5, 5)


@dataclass(frozen=True)
class SongEntry:
    """One song of the index (see the module docstring)."""

    id: int
    source: str
    genre: int
    instruments: tuple[int, ...]
    bars: int
    n_sixteenths: int
    tokens: int
    offset: int
    split: str
    licence: str = UNKNOWN_LICENCE
    composer: str = ""
    key: int = NO_KEY
    key_clarity: float = 0.0


@dataclass
class PrepareReport:
    """What `prepare` did. `skipped` holds (source, reason, message); `cut` (source, note)."""

    out_dir: Path
    files: int
    kept: int
    skipped: list[tuple[str, str, str]]
    cut: list[tuple[str, str]]
    token_counts: list[int]
    seconds: float
    licences: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(r for _, r, _ in self.skipped).items()))

    @property
    def files_per_second(self) -> float:
        return self.files / max(self.seconds, 1e-9)

    def summary(self) -> str:
        """A few lines for the terminal."""
        t = np.asarray(self.token_counts or [0])
        lines = [f"{self.files} MIDI files -> {self.kept} songs in {self.out_dir} "
                 f"({self.seconds:.1f} s, {self.files_per_second:.0f} files/s)",
                 f"tokens per song: mean {t.mean():.0f}, median {np.median(t):.0f}, "
                 f"max {t.max()}; {len(self.cut)} songs cut at a metre change"]
        if self.licences:
            lines.append("licences: " + ", ".join(f"{name} {n}"
                                                  for name, n in self.licences.items()))
        for reason, n in self.skipped_by_reason.items():
            lines.append(f"skipped {n:5d}  {reason}")
        return "\n".join(lines)


def find_midi_files(midi_dirs: list[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """(root, path relative to root) of every .mid/.midi file below the given folders, sorted."""
    found: dict[Path, tuple[Path, str]] = {}
    for d in midi_dirs:
        root = Path(d).resolve()
        if not root.is_dir():
            raise VbgmError(f"{d}: not a folder")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in filenames:
                if name.lower().endswith(MIDI_SUFFIXES):
                    p = Path(dirpath, name)
                    found.setdefault(p, (root, p.relative_to(root).as_posix()))
    return sorted(found.values(), key=lambda rr: (str(rr[0]), rr[1]))


def split_of(rel: str, percent: tuple[int, int, int] = (90, 5, 5)) -> str:
    """Deterministic split of a song from a hash of its path relative to its MIDI_DIR."""
    bucket = int.from_bytes(hashlib.sha1(rel.encode("utf-8")).digest()[:8], "big") % 100
    return "train" if bucket < percent[0] else "valid" if bucket < percent[0] + percent[1] \
        else "test"


def parse_genre(value: str | int) -> int:
    """A genre code from a name ("pop", case-insensitive) or a code ("5")."""
    text = str(value).strip().lower()
    if text.isdigit() and int(text) < len(GENRES):
        return int(text)
    if text in GENRE_IDS:
        return GENRE_IDS[text]
    raise VbgmError(f"unknown genre {value!r}; use a code 0..6 or one of {', '.join(GENRES)}")


def read_labels(path: str | os.PathLike[str]) -> dict[str, int]:
    """A labels CSV (`path,genre` per line, optional header) -> {path: genre code}.

    Paths may be relative to a MIDI_DIR, the index's `source` form, or a bare file stem.
    """
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise VbgmError(f"{path}: cannot read labels file ({exc})") from exc
    labels: dict[str, int] = {}
    for n, row in enumerate(rows, 1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise VbgmError(f"{path}:{n}: expected 'path,genre', got {','.join(row)!r}")
        if n == 1 and row[1].strip().lower() == "genre":
            continue
        try:
            labels[row[0].strip()] = parse_genre(row[1])
        except VbgmError as exc:
            raise VbgmError(f"{path}:{n}: {exc}") from None
    return labels


def _genre_for(rel: str, source: str, labels: dict[str, int], genres: dict[str, int]) -> int:
    for key in (rel, source, Path(rel).stem):
        if key in labels:
            return labels[key]
    best = -1, 0
    for prefix, code in genres.items():
        p = prefix.strip("/")
        if (p == "" or rel == p or rel.startswith(p + "/")) and len(p) > best[0]:
            best = len(p), code
    return best[1]


# --------------------------------------------------------------------------- licences and credits
def source_folder(source: str) -> str:
    """The corpus folder a song's `source` belongs to: the deepest of its folders that
    DATA_SOURCES knows, else its first folder ("" for a bare file name)."""
    folders = source.split("/")[:-1]
    known = [f for f in folders if f in DATA_SOURCES]
    return known[-1] if known else folders[0] if folders else ""


def folder_licence(source: str) -> str:
    """The licence of a song's source folder, UNKNOWN_LICENCE for a folder not in DATA_SOURCES."""
    found = DATA_SOURCES.get(source_folder(source))
    return found.licence if found else UNKNOWN_LICENCE


class Credit(NamedTuple):
    """One file's entry in an AUTHORS.md: who made it and under which licence."""

    composer: str
    licence: str


_AUTHORS_ROW = re.compile(r"`([^`]+)`\s*\|[^|]*\|([^|]*)\|")
_AUTHOR = re.compile(r"^\s*(.+?)\s*\[([^\]]+)\]")


def _licence_of_tag(tag: str) -> str:
    return AUTHOR_LICENCE_TAGS.get(tag.strip().lower(), tag.strip())


def parse_authors(text: str) -> dict[str, Credit]:
    """File name -> Credit from an EasyRPG-style AUTHORS.md table.

    Rows read "`NAME.mid` | year | Author [LICENCE], <br/>Author2 [LICENCE] (note) | URL".
    Several authors are joined with ", " and distinct licences with " AND ". A bare name that
    another row gives with a romanisation ("魔王魂" beside "魔王魂(Maoudamashii)") takes the
    fuller form, so each composer is credited under one name.
    """
    rows: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        m = _AUTHORS_ROW.search(line)
        if not m:
            continue
        authors = [a for part in m.group(2).split("<br/>") if (a := _AUTHOR.match(part))]
        if authors:
            rows[m.group(1).strip()] = [(a.group(1).rstrip(","), _licence_of_tag(a.group(2)))
                                        for a in authors]
    fuller = {n.split("(")[0].strip(): n for people in rows.values() for n, _ in people
              if "(" in n}
    credits = {}
    for name, people in rows.items():
        composers = dict.fromkeys(fuller.get(n, n) for n, _ in people)
        licences = dict.fromkeys(lic for _, lic in people)
        credits[name] = Credit(", ".join(composers), " AND ".join(licences))
    return credits


def _credit_for(path: Path, source: str, authors: dict[Path, dict[str, Credit]]) -> Credit:
    """A song's Credit: from an AUTHORS.md beside the file when it names the file, else the
    folder's licence and no composer. `authors` caches parsed AUTHORS.md files per folder."""
    folder = path.parent
    if folder not in authors:
        try:
            authors[folder] = parse_authors((folder / AUTHORS_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            authors[folder] = {}
    return authors[folder].get(path.name, Credit("", folder_licence(source)))


def credits(dataset: Dataset) -> str:
    """Markdown: the data sources of a prepared dataset with their licences and song counts,
    then the composers named per file (EasyRPG's AUTHORS.md) with how many songs each."""
    by_folder: dict[str, list[SongEntry]] = {}
    for s in dataset.songs:
        by_folder.setdefault(source_folder(s.source), []).append(s)
    lines = [f"{len(dataset.songs):,} songs from these sources (folder, songs kept, licence):", "",
             "| Source | Folder | Songs | Licence | Origin |", "|---|---|---:|---|---|"]
    for folder in sorted(by_folder, key=lambda f: (-len(by_folder[f]), f)):
        songs = by_folder[folder]
        known = DATA_SOURCES.get(folder)
        licences = Counter(s.licence for s in songs)
        licence = ", ".join(f"{lic} ({n})" if len(licences) > 1 else lic
                            for lic, n in sorted(licences.items(), key=lambda x: (-x[1], x[0])))
        lines.append(f"| {known.name if known else folder} | `{folder}/` | {len(songs):,} | "
                     f"{licence} | {known.origin if known else ''} |")
    for folder, songs in sorted(by_folder.items()):
        named = Counter((s.composer, s.licence) for s in songs if s.composer)
        if not named:
            continue
        name = DATA_SOURCES[folder].name if folder in DATA_SOURCES else folder
        lines += ["", f"{name}: composers (songs kept, licence):", "",
                  "| Composer | Songs | Licence |", "|---|---:|---|"]
        lines += [f"| {c} | {n} | {lic} |"
                  for (c, lic), n in sorted(named.items(), key=lambda x: (-x[1], x[0]))]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- keys
def song_key(song: Song) -> tuple[int, float]:
    """(key 0..23, clarity) of a song from the duration-weighted pitch-class histogram of its
    non-drum notes (Krumhansl–Kessler, `vbgm.harmony.detect_key`); (NO_KEY, 0.0) without any."""
    hist = pitch_class_durations(song)
    if not hist.any():
        return NO_KEY, 0.0
    key, clarity = detect_key(hist)
    return key, round(clarity, 4)


# ---------------------------------------------------------------------------- the work per file
def _work(path: str, config: PrepareConfig) -> tuple:
    """Read and tokenise one file: ("ok", tokens, instruments, n_sixteenths, note, key,
    key_clarity) or ("skip", reason, message)."""
    try:
        song, note = load_song(path, config.quantize)
    except SkipSong as exc:
        return "skip", exc.reason, str(exc)
    except Exception as exc:  # a bug or an odd file must not abort the whole run
        return "skip", UNREADABLE, f"{path}: {type(exc).__name__}: {exc}"
    tokens = encode(song)
    if len(tokens) > config.max_tokens:
        return "skip", TOO_MANY_TOKENS, f"{path}: {len(tokens)} tokens, over {config.max_tokens}"
    return "ok", tokens, song.instruments, song.n_sixteenths, note, *song_key(song)


def _call_chunk(fn: Callable, items: list, *args) -> list:
    return [fn(item, *args) for item in items]


def run_isolated(fn: Callable, items: list, args: tuple, workers: int, progress: bool,
                 on_crash: Callable) -> list:
    """[fn(item, *args) for item in items], in order, across `workers` processes, surviving
    processes that die.

    symusic can take its process down on corrupt bytes (a segfault, not an exception). A chunk
    whose process died is retried once with the others; chunks that fail again are run item by
    item, each in a process of its own, and an item that still kills its process gets
    `on_crash(item)`. Everything else is kept.
    """
    from tqdm import tqdm

    results: list = [None] * len(items)
    size = max(1, min(32, len(items) // (8 * max(workers, 1))))
    queue = [list(range(i, min(i + size, len(items)))) for i in range(0, len(items), size)]
    with tqdm(total=len(items), unit="file", disable=not progress, desc="prepare") as bar:
        for _attempt in range(2):
            failed = []
            with ProcessPoolExecutor(max(workers, 1)) as pool:
                futures = {pool.submit(_call_chunk, fn, [items[i] for i in c], *args): c
                           for c in queue}
                for fut in as_completed(futures):
                    chunk = futures[fut]
                    try:
                        for i, r in zip(chunk, fut.result(), strict=True):
                            results[i] = r
                        bar.update(len(chunk))
                    except BrokenProcessPool:
                        failed.append(chunk)
            queue = sorted(failed)
            if not queue:
                break
        for i in (i for chunk in queue for i in chunk):
            with ProcessPoolExecutor(1) as pool:
                try:
                    results[i] = pool.submit(fn, items[i], *args).result()
                except BrokenProcessPool:
                    results[i] = on_crash(items[i])
            bar.update(1)
    return results


def _crashed(path: str) -> tuple:
    return "skip", UNREADABLE, f"{path}: the MIDI parser crashed on this file"


# ------------------------------------------------------------------------------ prepare / write
def prepare(midi_dirs: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
            config: PrepareConfig | None = None, labels: dict[str, int] | None = None,
            workers: int = 1, progress: bool = False) -> PrepareReport:
    """Tokenise every MIDI file below `midi_dirs` into a dataset at `out_dir` (replaced whole).

    One bad file never aborts: it is listed in the report with its reason. Refuses to replace a
    folder that exists, is not empty and is not a dataset.
    """
    config = config or PrepareConfig()
    labels = labels or {}
    out = Path(out_dir)
    if out.exists() and not (out / "index.json").is_file() and (
            not out.is_dir() or any(out.iterdir())):
        raise VbgmError(f"{out}: exists and is not a vbgm dataset; refusing to replace it")
    start = time.perf_counter()
    files = find_midi_files(midi_dirs)
    if not files:
        raise VbgmError(f"no .mid/.midi files under {', '.join(map(str, midi_dirs))}")
    paths = [str(root / rel) for root, rel in files]
    results = run_isolated(_work, paths, (config,), workers, progress, _crashed)

    songs, arrays, skipped, cut = [], [], [], []
    offset = 0
    authors: dict[Path, dict[str, Credit]] = {}
    for (root, rel), r in zip(files, results, strict=True):
        source = f"{root.name}/{rel}"
        if r[0] == "skip":
            skipped.append((source, r[1], r[2]))
            continue
        _, tokens, instruments, n16, note, key, clarity = r
        if note:
            cut.append((source, note))
        credit = _credit_for(root / rel, source, authors)
        songs.append(SongEntry(
            id=len(songs), source=source, genre=_genre_for(rel, source, labels, config.genres),
            instruments=tuple(instruments), bars=-(-n16 // 16), n_sixteenths=n16,
            tokens=len(tokens), offset=offset, split=split_of(rel, config.split_percent),
            licence=credit.licence, composer=credit.composer, key=key, key_clarity=clarity))
        arrays.append(tokens)
        offset += len(tokens)

    all_tokens = np.concatenate(arrays) if arrays else np.zeros((0, N_FIELDS), np.int32)
    index = {"format": FORMAT, "version": VERSION,
             "config": {**asdict(config), "midi_dirs": [str(Path(d).resolve()) for d in midi_dirs]},
             "songs": [asdict(s) for s in songs]}
    licences = dict(sorted(Counter(s.licence for s in songs).items(),
                           key=lambda x: (-x[1], x[0])))
    report = PrepareReport(out, len(files), len(songs), skipped, cut,
                           [s.tokens for s in songs], 0.0, licences)
    report_json = {"files": report.files, "kept": report.kept,
                   "skipped_by_reason": report.skipped_by_reason,
                   "splits": dict(Counter(s.split for s in songs)),
                   "licences": licences,
                   "skipped": [{"source": s, "reason": r, "message": m} for s, r, m in skipped],
                   "cut_at_metre_change": [{"source": s, "note": n} for s, n in cut]}
    # Measured on the decoded rows (what the model learns from), train split only.
    train_songs = [decode(t) for s, t in zip(songs, arrays, strict=True) if s.split == "train"]
    stats = corpus_stats.measure(train_songs, source=str(out.resolve()))
    _write_dir(out, {"index.json": _dumps(index), "report.json": _dumps(report_json),
                     corpus_stats.FILE_NAME: corpus_stats.to_json(stats).encode("utf-8")},
               all_tokens)
    report.seconds = time.perf_counter() - start
    return report


def _dumps(obj: object) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _write_dir(out: Path, files: dict[str, bytes], tokens: np.ndarray) -> None:
    """Build the dataset in a sibling temp folder, then swap it in with renames."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        os.chmod(tmp, 0o755)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        np.save(tmp / "tokens.npy", tokens.astype(np.int32), allow_pickle=False)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the previous dataset back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------- reading
class Dataset:
    """A prepared dataset: `songs` (SongEntry list), token rows per song, initial rows, splits."""

    def __init__(self, root: Path, config: dict, songs: list[SongEntry], tokens: np.ndarray):
        self.root, self.config, self.songs, self._tokens = root, config, songs, tokens

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Open DATASET_DIR (token rows are memory-mapped, not read)."""
        root = Path(path)
        index_path = root / "index.json"
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VbgmError(f"{root}: not a vbgm dataset (no index.json); "
                            "make one with `vbgm prepare`") from None
        except (OSError, ValueError) as exc:
            raise VbgmError(f"{index_path}: unreadable dataset index ({exc})") from exc
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise VbgmError(f"{index_path}: not a vbgm dataset index")
        if index.get("version") != VERSION:
            raise VbgmError(f"{index_path}: dataset version {index.get('version')}, "
                            f"this vbgm reads {VERSION}; prepare it again")
        try:
            songs = [SongEntry(**{**s, "instruments": tuple(s["instruments"])})
                     for s in index["songs"]]
            tokens = np.load(root / "tokens.npy", mmap_mode="r", allow_pickle=False)
        except (KeyError, TypeError) as exc:
            raise VbgmError(f"{index_path}: malformed song entry ({exc})") from exc
        except (OSError, ValueError) as exc:
            raise VbgmError(f"{root / 'tokens.npy'}: unreadable token file ({exc})") from exc
        total = sum(s.tokens for s in songs)
        if tokens.dtype != np.int32 or tokens.ndim != 2 or tokens.shape != (total, N_FIELDS):
            raise VbgmError(f"{root / 'tokens.npy'}: expected int32 ({total}, {N_FIELDS}), "
                            f"got {tokens.dtype} {tokens.shape}")
        return cls(root, index.get("config", {}), songs, tokens)

    def __len__(self) -> int:
        return len(self.songs)

    def tokens(self, i: int) -> np.ndarray:
        """Token rows (T, 9) int32 of song i, EOS row last (a read-only memory-mapped view)."""
        s = self.songs[i]
        return self._tokens[s.offset: s.offset + s.tokens]

    def init(self, i: int) -> np.ndarray:
        """The (7, 3) initial rows of song i: its genre and its instruments."""
        s = self.songs[i]
        return init_tokens(s.genre, s.instruments)

    def key(self, i: int) -> int:
        """The detected key of song i (0..23; -1 = no pitched note)."""
        return self.songs[i].key

    def split(self, name: str) -> list[int]:
        """Indices into `songs` of one split: "train", "valid" or "test"."""
        if name not in SPLITS:
            raise VbgmError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return [s.id for s in self.songs if s.split == name]
