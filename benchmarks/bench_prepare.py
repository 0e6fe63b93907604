"""Benchmark `vbgm prepare` over the whole shared MIDI corpus with 2 workers.

Prints files/s, songs kept / skipped by reason and tokens per song, and writes
benchmarks/results/prepare.json (run_all.py's convention: "figures", the details beside them).
Genres: POP909 -> pop, Freedoom -> rock (mostly rock/metal), Groove from its info.csv style
(rock/punk -> rock, country -> country), the rest unknown.

    python benchmarks/bench_prepare.py [--midi DIR] [--out DATASET_DIR] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
from vbgm.atomic import write_text_atomic
from vbgm.dataset import PrepareConfig, prepare

ROOT = Path(__file__).resolve().parents[1]
GROOVE_STYLES = {"rock": "rock", "punk": "rock", "country": "country"}


def corpus_labels(midi: Path) -> dict[str, int]:
    """Genre labels of the Groove files from its info.csv (path relative to `midi`)."""
    from vbgm.dataset import parse_genre

    info = midi / "groove" / "info.csv"
    if not info.is_file():
        return {}
    labels = {}
    with info.open(newline="") as f:
        for row in csv.DictReader(f):
            style = GROOVE_STYLES.get(row["style"].split("/")[0])
            if style:
                labels[f"groove/{row['midi_filename']}"] = parse_genre(style)
    return labels


def figures(result: dict) -> list[dict]:
    """The headline figures of a prepare run (`result` as main builds it)."""
    note = f"{result['files']} MIDI files, {result['workers']} workers, {result['machine']}"
    skipped = ", ".join(f"{k} {v}" for k, v in result["skipped_by_reason"].items())
    tokens = result["tokens_per_song"]
    return [
        {"metric": "prepare throughput, whole MIDI corpus", "value": result["files_per_second"],
         "unit": "files/s", "note": note},
        {"metric": "prepare wall time, whole MIDI corpus", "value": result["seconds"],
         "unit": "s", "note": note},
        {"metric": "songs kept", "value": result["kept"], "unit": "songs",
         "note": f"of {result['files']}; skipped: {skipped or 'none'}"},
        {"metric": "tokens per kept song, mean", "value": tokens["mean"], "unit": "tokens",
         "note": f"median {tokens['median']:g}, max {tokens['max']}"},
        {"metric": "tokens in the prepared dataset", "value": tokens["total"], "unit": "tokens",
         "note": f"{result['kept']} songs"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--midi", type=Path, default=ROOT.parent / "shared" / "data" / "midi")
    ap.add_argument("--out", type=Path, help="keep the dataset here (default: a temp folder)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    config = PrepareConfig(genres={"pop909": 5, "freedoom": 6})
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "dataset"
        report = prepare([args.midi], out, config, corpus_labels(args.midi),
                         workers=args.workers, progress=True)
        index = json.loads((out / "index.json").read_text())
    print(report.summary())
    t = np.asarray(report.token_counts)
    genres: dict[int, int] = {}
    for s in index["songs"]:
        genres[s["genre"]] = genres.get(s["genre"], 0) + 1
    result = {
        "files": report.files, "workers": args.workers, "seconds": round(report.seconds, 2),
        "files_per_second": round(report.files_per_second, 1), "kept": report.kept,
        "skipped_by_reason": report.skipped_by_reason, "cut_at_metre_change": len(report.cut),
        "tokens_per_song": {"mean": round(float(t.mean()), 1), "median": float(np.median(t)),
                            "max": int(t.max()), "total": int(t.sum())},
        "songs_per_genre_code": dict(sorted(genres.items())),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
    }
    path = ROOT / "benchmarks" / "results" / "prepare.json"
    out = {"name": "prepare", "figures": figures(result), **result}
    write_text_atomic(path, json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
