"""Does `--key X` give music in key X? The key control, measured with the key finder.

For each model (default: the shipped one), 10 requested keys (five major, five minor) × 3 clips
(the longest of ../shared/data/videos and the 30 s demo clip: a key needs a few bars to be
heard, and the shortest real clips are under two bars) × 16 seeds are generated at the default
control degree, and each song's key is found by the same Krumhansl-Kessler finder that labels the
training songs (duration-weighted pitch classes of the non-drum notes). Printed per model:
the share found in exactly the requested key (also by clip and by mode), the share found in it
or its relative key (same notes, other tonic), the share of pitched notes inside the requested
scale, and the misses by kind (the relative key, the parallel one, a fifth away, other); twice: with
the sampler's default pulls towards the requested key (its profile and its phrase chords), and
with both off (`Rules(key_pull=0, key_chord_pull=0)`), where only the model keeps the key.

    python benchmarks/bench_keys.py [--checkpoint A.pt B.pt ...] [--clips 3] [--seeds 16]
                                    [--first-seed 0]
                                    [--key-pull 1.5 2 3]

Writes benchmarks/results/keys.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from vbgm.atomic import write_text_atomic
from vbgm.dataset import song_key
from vbgm.formats import VIDEO_SUFFIXES
from vbgm.metrics import pitch_class_durations
from vbgm.pipeline import default_checkpoint, load_model
from vbgm.rules import Rules
from vbgm.sampling import Controls, Request, SamplingConfig, generate
from vbgm.song import DRUMS, INSTRUMENT, PITCH
from vbgm.video import analyze

from vbgm import harmony

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "keys.json"
DATA = Path(os.environ.get("VBGM_DATA", ROOT.parent / "shared" / "data"))
KEYS = ("C", "D", "Eb", "F#", "A", "C#m", "Em", "Fm", "G#m", "Bm")


def demo_clip() -> Path:
    """The 30 s demo clip (three scenes), made once in the temporary folder."""
    import tempfile

    from vbgm.demo_video import make_demo_video

    path = Path(tempfile.gettempdir()) / "vbgm-bench-music-demo30s.mp4"
    if not path.is_file():
        make_demo_video(path, seconds=30.0, size=(640, 360))
    return path


def relative(key: int) -> int:
    """The relative minor of a major key and the relative major of a minor one."""
    return (key + 9) % 12 + 12 if key < 12 else (key + 3) % 12


def in_scale_share(song, key: int) -> float:
    notes = song.notes[song.notes[:, INSTRUMENT] != DRUMS]
    if not len(notes):
        return float("nan")
    return float(harmony.scale_mask(key)[notes[:, PITCH] % 12].mean())


def miss_kind(key: int, found: int) -> str:
    """How a found key differs from the requested one: relative (same notes), parallel (same
    tonic, other mode), fifth (same mode, a fifth up or down) or other."""
    if found == relative(key):
        return "relative"
    same_mode = (found < 12) == (key < 12)
    if not same_mode and found % 12 == key % 12:
        return "parallel"
    if same_mode and (found - key) % 12 in (5, 7):
        return "fifth"
    return "other"


def measure(model, analyses: list, config: SamplingConfig, seeds: int = 1,
            first_seed: int = 0) -> dict:
    """The key control over every requested key × clip × seed: shares found in the key (and
    by clip and by mode), in it or its relative, notes in its scale, and the misses by kind."""
    exact, close, scale, classes, clip_of, minor = [], [], [], [], [], []
    misses = {"relative": 0, "parallel": 0, "fifth": 0, "other": 0}
    for name in KEYS:
        key = harmony.parse_key(name)
        for i, a in enumerate(analyses):
            for seed in range(first_seed + i, first_seed + i + seeds * len(analyses),
                              len(analyses)):
                (g,) = generate(model, Controls.from_analysis(a), Request(key=key), config,
                                seed=seed)
                found = song_key(g.song)[0]
                exact.append(found == key)
                if found != key:
                    misses[miss_kind(key, found)] += 1
                clip_of.append(i)
                minor.append(key >= 12)
                close.append(found in (key, relative(key)))
                scale.append(in_scale_share(g.song, key))
                hist = pitch_class_durations(g.song)
                classes.append(int((hist >= 0.05 * max(hist.sum(), 1e-9)).sum()))
    exact_a, clip_a, minor_a = np.array(exact), np.array(clip_of), np.array(minor)
    return {"exact": float(exact_a.mean()), "exact_or_relative": float(np.mean(close)),
            "in_scale": float(np.nanmean(scale)), "pitch_classes": float(np.mean(classes)),
            "songs": len(exact),
            "exact_by_clip": [float(exact_a[clip_a == i].mean()) for i in range(len(analyses))],
            "exact_major": float(exact_a[~minor_a].mean()),
            "exact_minor": float(exact_a[minor_a].mean()), "misses": misses}


def figures(runs: dict[str, dict]) -> list[dict[str, object]]:
    """The results convention's figures (`run_all.py`) of the runs (`measure`'s results, each
    with its "model" and "run")."""
    return [{"metric": f"key control, {r['run']}: {what}", "value": r[field], "unit": "share",
             "note": f"{Path(r['model']).name}, {r['songs']} songs"}
            for r in runs.values()
            for field, what in (("exact", "found in the requested key"),
                                ("exact_or_relative", "in it or its relative"),
                                ("in_scale", "notes in its scale"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="+", type=Path, help="models (default: shipped)")
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=16,
                    help="songs per key and clip (default 16: 480 songs; the share moved by "
                         "20 points between two draws of 30 songs, 4 of 90 and 5 of 240)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds from this one: a fresh draw, to check a change chosen on the "
                         "default seeds")
    ap.add_argument("--key-pull", type=float, nargs="+",
                    help="instead of the default and model-alone runs: these key pulls "
                         "(Rules.key_pull), the chord pull at its default")
    args = ap.parse_args()
    t0 = time.perf_counter()
    clips = [p for p in (DATA / "videos").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES]
    clips.append(demo_clip())
    found = sorted(((analyze(p), p) for p in clips), key=lambda ap: -ap[0].n_sixteenths)
    analyses = [a for a, _ in found[:args.clips]]
    clips = [p for _, p in found[:args.clips]]
    print("clips: " + ", ".join(f"{p.name} ({a.n_sixteenths // 16} bars)"
                                for a, p in zip(analyses, clips)))
    out = {}
    for path in args.checkpoint or [default_checkpoint()]:
        model = load_model(path)
        runs = {"with pull": Rules(), "model alone": Rules(key_pull=0.0, key_chord_pull=0.0)}
        if args.key_pull:
            runs = {f"key pull {k:g}": Rules(key_pull=k) for k in args.key_pull}
        for label, rules in runs.items():
            r = measure(model, analyses, replace(SamplingConfig(), rules=rules), args.seeds,
                        args.first_seed)
            out[f"{path} ({model.config.keys}), {label}"] = r = {**r, "model": str(path),
                                                                  "run": label}
            print(f"{path} (keys={model.config.keys}) {label:12}: in key {r['exact']:.0%}, "
                  f"in key or relative {r['exact_or_relative']:.0%}, notes in scale "
                  f"{r['in_scale']:.1%}, pitch classes (≥ 5 % of the sound) "
                  f"{r['pitch_classes']:.1f} ({r['songs']} songs) "
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)
            print("    in key by clip " + ", ".join(
                      f"{p.name} {v:.0%}" for p, v in zip(clips, r["exact_by_clip"]))
                  + f"; major {r['exact_major']:.0%}, minor {r['exact_minor']:.0%}; misses "
                  + ", ".join(f"{k} {v}" for k, v in r["misses"].items()), flush=True)
    write_text_atomic(RESULTS, json.dumps({"name": "keys", "figures": figures(out),
                                           "clips": [p.name for p in clips], "keys": KEYS,
                                           "runs": out}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
