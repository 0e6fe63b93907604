"""How much do generated songs copy the training data? The originality check's figures.

N songs are generated freely (no video controls: the model alone, with the sampler's rules) by
the shipped model, `--seconds` long at `--tempo`, in batches of 10 (seeds 0, 1, ...), and each is
checked against the training split of a prepared dataset (`vbgm.originality`). The reference for
what chance overlap looks like: the held-out (test split) songs of the same dataset, as excerpts
of the same number of bars (from their first bar) and whole. Printed and written: the
distribution of the longest copied passage (bars), the share of songs flagged (>= FLAG_BARS),
the top song's share of shared phrases, and the time per check.

    python benchmarks/bench_originality.py [--dataset data/midi-ds] [--n 100] [--seconds 30]

Writes benchmarks/results/originality.json. The index is built into a temporary file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from vbgm.atomic import write_text_atomic
from vbgm.dataset import Dataset
from vbgm.originality import FLAG_BARS, Index, build_index, check
from vbgm.pipeline import free_controls, load_model_and_stats
from vbgm.sampling import Request, SamplingConfig, generate
from vbgm.song import ONSET, Song
from vbgm.tokens import decode

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "originality.json"


def summary(longest: list[int], shared: list[float], seconds: list[float]) -> dict:
    """Distribution figures of one group of songs."""
    a = np.array(longest)
    return {"n": len(a), "median_bars": float(np.median(a)),
            "p90_bars": float(np.percentile(a, 90)), "p95_bars": float(np.percentile(a, 95)),
            "max_bars": int(a.max()), "flagged": float(np.mean(a >= FLAG_BARS)),
            "histogram": {str(b): int((a == b).sum()) for b in range(int(a.max()) + 1)},
            "top_shared_median": float(np.median(shared)),
            "check_ms_mean": 1000 * float(np.mean(seconds))}


def checked(songs: list[Song], index: Index, tempo: float) -> dict:
    longest, shared, took = [], [], []
    for song in songs:
        t = time.perf_counter()
        report = check(song, index, tempo)
        took.append(time.perf_counter() - t)
        longest.append(report.longest_bars)
        shared.append(report.closest[0].shared if report.closest else 0.0)
    return summary(longest, shared, took)


def excerpt(song: Song, bars: int) -> Song:
    keep = song.notes[:, ONSET] < bars * 16
    return Song(song.notes[keep], min(song.n_sixteenths, bars * 16), song.genre)


def figures(results: dict) -> list[dict[str, object]]:
    """The results convention's figures (`run_all.py`): per song set its longest copied passage
    and the share flagged, and the time of one check."""
    out = []
    for name in ("generated", "held_out_excerpts", "held_out_whole"):
        r = results[name]
        note = (f"{r['n']} songs of {results['bars']} bars vs {results['training_songs']} "
                "training songs")
        out += [{"metric": f"originality {name}: longest copied passage, max",
                 "value": r["max_bars"], "unit": "bars", "note": note},
                {"metric": f"originality {name}: flagged", "value": r["flagged"], "unit": "share",
                 "note": f"flagged at {results['flag_bars']} bars"}]
    out.append({"metric": "originality: one check", "value": results["generated"]["check_ms_mean"],
                "unit": "ms", "note": "per generated song, after the index is built"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT / "data" / "midi-ds")
    parser.add_argument("--n", type=int, default=100, help="generated songs")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tempo", type=float, default=110.0)
    args = parser.parse_args()

    t = time.perf_counter()
    index = build_index(args.dataset)
    with tempfile.TemporaryDirectory() as tmp:  # the saved form, as the CLI reads it
        index.save(Path(tmp) / "index.npz")
        size = (Path(tmp) / "index.npz").stat().st_size
        index = Index.load(Path(tmp) / "index.npz")
    built = time.perf_counter() - t
    print(f"index of {len(index.sources)} training songs: {built:.1f} s, {size / 2**20:.1f} MB")

    model, stats = load_model_and_stats()
    controls = free_controls(args.seconds, args.tempo)
    bars = -(-controls.n_sixteenths // 16)
    generated: list[Song] = []
    t = time.perf_counter()
    for batch in range(-(-args.n // 10)):
        k = min(10, args.n - 10 * batch)
        gens = generate(model, controls, Request(), SamplingConfig(), candidates=k, seed=batch,
                        stats=stats)
        generated.extend(g.song for g in gens)
        print(f"  generated {len(generated)}/{args.n} [{time.perf_counter() - t:.0f} s]")
    ds = Dataset.load(args.dataset)
    held = [decode(np.asarray(ds.tokens(i))) for i in ds.split("test")]
    held = [s for s in held if s.n_bars >= bars]
    results = {
        "dataset": str(args.dataset), "training_songs": len(index.sources),
        "index_build_s": round(built, 1), "index_mb": round(size / 2**20, 1),
        "flag_bars": FLAG_BARS, "seconds": args.seconds, "tempo": args.tempo, "bars": bars,
        "generated": checked(generated, index, args.tempo),
        "held_out_excerpts": checked([excerpt(s, bars) for s in held], index, args.tempo),
        "held_out_whole": checked(held, index, args.tempo),
    }
    for name in ("generated", "held_out_excerpts", "held_out_whole"):
        r = results[name]
        print(f"{name:18s} n={r['n']:3d}  longest copied passage (bars): median "
              f"{r['median_bars']:g}, p90 {r['p90_bars']:g}, p95 {r['p95_bars']:g}, max "
              f"{r['max_bars']}; flagged {r['flagged']:.0%}; top song shares "
              f"{r['top_shared_median']:.1%} of phrases (median); {r['check_ms_mean']:.1f} ms "
              f"per check; {r['histogram']}")
    results["figures"] = figures(results)
    write_text_atomic(RESULTS, json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
