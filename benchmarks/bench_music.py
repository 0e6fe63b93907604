"""Does the music sound like music? The musicality measurements of generated songs vs real songs.

For every clip in ../shared/data/videos × seeds × control degrees C (default 0, 0.7, 1), the
shipped model scores the clip (analysis → controls → sampling, as `vbgm generate`), and each song
gets the 14 measurements of `vbgm.metrics.musicality`, its control fit (density fidelity, beat
hit rate, length), how far each hard cut lies from a section boundary, and whether a beat tracker
(librosa's, on the rendered audio) finds the analysis tempo (within 8 %, octave errors allowed).
The reference is the real multi-track songs of ../shared/data/midi (freedoom, simutrans,
easyrpg, lmd_samples), read two ways: whole songs, and excerpts as long as the clips (for each
clip, every real song from bar 8 on, cut to the clip's length in sixteenths; then averaged over
the clips like the generated songs). Several measurements grow with length (pitch range, pitch
classes used, pitch-class entropy, bar repetition: a 4-bar excerpt of a real song uses 7-8 pitch
classes, the whole song 9-11), so the length-matched excerpts are the fair reference for music
of a clip's length; both are printed. A generated mean counts when it lies within the range of
the four folders' means, or beyond it on the side the issue asks for (`GOOD_SIDE`: e.g. fewer
bass notes above middle C, more recurring bars). Each run also lists the measurements whose mean
lies within two standard errors (over its songs) of a bound: with 30 songs that is most of them,
and the same code run on another machine drew other songs, so a count of 11 or 12 of 14 is not
a verdict on its own.

At C = 0.7 and 1 the issue's "Done when" checks are printed one per line (✓ / ✗) and kept in the
JSON ("done_when").

The cut criterion (every cut within one beat of a section boundary) is measured on every song
of a clip with cuts (bikes.mp4: five in ten seconds) and on the demo clip (`vbgm.demo_video`:
30 s, three scenes, two cuts).

`--ablate` also runs C = 0.7 with each sampling rule switched off in turn (registers, drum
accents, chord tones, groove, beat coverage, repeats, density floor) and with the optional
chord and scale pulls switched on: each rule's effect at equal controls.

Writes benchmarks/results/music.json (run_all.py's convention).

    python benchmarks/bench_music.py [--quick] [--seeds 6] [--control 0 0.7 1] [--ablate]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from vbgm.atomic import write_text_atomic
from vbgm.controls import video_auto_key
from vbgm.evaluation import crop_song, midi_files
from vbgm.formats import VIDEO_SUFFIXES
from vbgm.metrics import MUSICALITY, beat_hit_rate, density_fidelity, musicality
from vbgm.midi import read_midi, song_to_score
from vbgm.pipeline import load_model
from vbgm.render import render_midi
from vbgm.rules import Rules
from vbgm.sampling import Controls, Request, SamplingConfig, generate
from vbgm.song import DURATION, ONSET, SIXTEENTHS_PER_BAR, Song
from vbgm.video import analyze

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "music.json"
DATA = Path(os.environ.get("VBGM_DATA", ROOT.parent / "shared" / "data"))
REAL_FOLDERS = ("freedoom", "simutrans", "easyrpg", "lmd_samples")
TEMPO_TOLERANCE = 0.08
SAMPLE_RATE = 22050
# Rules switched off (or optional pulls on) one at a time by --ablate.
ABLATIONS = {"without registers": {"registers": False},
             "without drum_accents": {"drum_accents": False},
             "without chord_tones": {"chord_tones": False}, "without groove": {"groove": False},
             "without beat_coverage": {"beat_coverage": False},
             "without repeats": {"repeats": False}, "without density_floor": {"density_floor": 1},
             "with chord pull 1.5": {"chord": 1.5}, "with scale pull 1": {"harmony": 1.0}}


# Measurements where music beyond the real range is better, not worse (the one-sided
# targets): fewer bass notes above middle C, more drums on the GM kit, fewer empty beats and
# dissonant pairs, more recurring bars (real whole songs recur 55-73 %; excerpts as short as
# the clips cut their phrases, so 15-31 %: the issue asks for >= 40 %).
GOOD_SIDE = {"bass_high_share": -1, "drum_kit_share": 1, "empty_beat_rate": -1,
             "dissonance_rate": -1, "bar_repetition": 1}


def counts(value: float, key: str, lo: float, hi: float) -> bool:
    """Whether a generated mean counts towards the 12 of 14: inside the real range, or beyond
    it on its good side (`GOOD_SIDE`)."""
    side = GOOD_SIDE.get(key, 0)
    return lo <= value <= hi or (side < 0 and value < lo) or (side > 0 and value > hi)


def done_when(run: dict[str, float], counted: int, lo: dict, hi: dict, real_dissonance: float,
              empty_worst: float, cut_worst: float, control: float) -> list[tuple[str, bool]]:
    """The issue's "Done when" checks for one run at control degree `control` (C = 0.7 and 1):
    (what, whether it holds)."""
    out = [(f"{counted} of 14 measurements count (>= 12)", counted >= 12),
           (f"bass above C4 {run['bass_high_share']:.1%} (<= 5 %)",
            run["bass_high_share"] <= 0.05),
           (f"drums on GM keys {run['drum_kit_share']:.1%} (>= 98 %)",
            run["drum_kit_share"] >= 0.98),
           (f"empty-beat rate, worst clip {empty_worst:.1%} (<= 3 %)", empty_worst <= 0.03),
           (f"bar repetition {run['bar_repetition']:.1%} (>= 40 %)",
            run["bar_repetition"] >= 0.40),
           (f"dissonant pairs {run['dissonance_rate']:.1%} (<= 1.3 x real "
            f"{real_dissonance:.1%})", run["dissonance_rate"] <= 1.3 * real_dissonance),
           (f"polyphony {run['polyphony']:.2f} (real {lo['polyphony']:.2f}-"
            f"{hi['polyphony']:.2f})", lo["polyphony"] <= run["polyphony"] <= hi["polyphony"]),
           (f"worst cut to a section boundary, real clips and demo clip: {cut_worst:g} "
            "sixteenths (<= 4)", cut_worst <= 4)]
    if "tempo_found" in run:
        out.append((f"tempo found on {run['tempo_found']:.0%} of songs (>= 90 %)",
                     run["tempo_found"] >= 0.9))
    if control >= 1.0:
        out += [(f"density fidelity {run['density_fidelity']:.3f} (>= 0.95)",
                 run["density_fidelity"] >= 0.95),
                (f"beat hit rate {run['beat_hit_rate']:.3f} (>= 0.95)",
                 run["beat_hit_rate"] >= 0.95),
                (f"length error {run['length_error_16ths']:g} sixteenths (<= 1)",
                 run["length_error_16ths"] <= 1)]
    return out


def real_songs(limit: int | None) -> dict[str, list[Song]]:
    """The readable 4/4 songs of each real folder."""
    out = {}
    for name in REAL_FOLDERS:
        out[name] = []
        for path in midi_files(DATA / "midi" / name)[:limit]:
            try:
                out[name].append(read_midi(path))
            except Exception:  # a skipped song (not 4/4, unreadable) is not a reference
                continue
    return out


def excerpt(song: Song, n_sixteenths: int, start_bar: int = 8) -> Song:
    """`n_sixteenths` of a song from the bar line `start_bar` (earlier when the song is short),
    the last bar as partial as the clip's."""
    bars = -(-n_sixteenths // SIXTEENTHS_PER_BAR)
    start = SIXTEENTHS_PER_BAR * min(start_bar, max(0, song.n_bars - bars))
    notes = song.notes[song.notes[:, ONSET] >= start].copy()
    notes[:, ONSET] -= start
    return crop_song(Song(notes=notes, n_sixteenths=song.n_sixteenths - start), n_sixteenths)


def folder_means(songs: list[Song]) -> dict[str, float]:
    values = [musicality(s) for s in songs]
    return {k: float(np.nanmean([v[k] for v in values])) for k, _ in MUSICALITY}


def real_reference(songs: dict[str, list[Song]], clip_lengths: list[int] | None
                   ) -> dict[str, dict[str, float]]:
    """Per real folder, the mean of every measurement over its songs (clip_lengths None), or
    over excerpts as long as each clip (in sixteenths), averaged over the clips."""
    out = {}
    for name, group in songs.items():
        if clip_lengths is None:
            out[name] = folder_means(group)
        else:
            per_clip = [folder_means([excerpt(s, n) for s in group]) for n in clip_lengths]
            out[name] = {k: float(np.nanmean([p[k] for p in per_clip])) for k, _ in MUSICALITY}
        out[name]["songs"] = len(group)
    return out


def tracked_tempo(song, tempo_bpm: float) -> float:
    """The tempo librosa's beat tracker finds in the rendered song."""
    import librosa

    audio = render_midi(song_to_score(song, tempo_bpm), SAMPLE_RATE).mean(axis=1)
    if len(audio) < SAMPLE_RATE:
        return math.nan
    tempo, _ = librosa.beat.beat_track(y=audio.astype(np.float32), sr=SAMPLE_RATE)
    return float(np.atleast_1d(tempo)[0])


def tempo_found(found: float, wanted: float) -> bool:
    """Within TEMPO_TOLERANCE of the wanted tempo, its double or its half."""
    return any(abs(found - wanted * f) <= TEMPO_TOLERANCE * wanted * f for f in (0.5, 1.0, 2.0))


def score_song(g, controls: Controls, tempo: float, track: bool) -> dict[str, float]:
    """Musicality, control fit, cut-to-section distance and beat tracking of one song."""
    song = g.song
    row = musicality(song)
    dens = density_fidelity(song, controls.bar_density[: controls.n_bars])
    beats = controls.beats[controls.beats[:, 1] > 0, 0]
    row["density_fidelity"] = dens
    row["beat_hit_rate"] = beat_hit_rate(song, beats) if len(beats) else math.nan
    end = int((song.notes[:, ONSET] + song.notes[:, DURATION]).max()) if len(song.notes) else 0
    row["length_error_16ths"] = float(abs(end - controls.n_sixteenths))
    bounds = np.array(g.sections) * SIXTEENTHS_PER_BAR
    row["cut_distance_16ths"] = (float(max(np.min(np.abs(bounds - c)) for c in controls.cuts))
                                 if len(controls.cuts) else math.nan)
    if track:
        found = tracked_tempo(song, tempo)
        row["tracked_tempo"] = found
        row["tempo_found"] = float(tempo_found(found, tempo)) if np.isfinite(found) else 0.0
    return row


def demo_cut_distances(model, controls_degrees: list[float], seeds: int) -> dict[str, float]:
    """Worst cut-to-section-boundary distance (sixteenths) on the demo clip, per C."""
    import tempfile

    from vbgm.demo_video import make_demo_video

    path = Path(tempfile.gettempdir()) / "vbgm-bench-music-demo30s.mp4"
    if not path.is_file():
        make_demo_video(path, seconds=30.0, size=(640, 360))
    controls = Controls.from_analysis(analyze(path))
    out = {}
    for c in controls_degrees:
        worst = 0.0
        for seed in range(seeds):
            (g,) = generate(model, controls, Request(), SamplingConfig(control=c), seed=seed)
            bounds = np.array(g.sections) * SIXTEENTHS_PER_BAR
            worst = max([worst] + [float(np.min(np.abs(bounds - x))) for x in controls.cuts])
        out[f"C={c:g}"] = worst
    return out


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys()
    return {k: float(np.nanmean([r[k] for r in rows])) if np.isfinite([r[k] for r in rows]).any()
            else math.nan for k in keys}


def standard_errors(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per measurement, the standard error of its mean over the songs (NaN below two values):
    how far the mean may move with other random draws (another seed, or another CPU whose
    rounding turns one draw differently)."""
    out = {}
    for k in rows[0]:
        v = np.array([r[k] for r in rows], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[k] = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return out


def near_bounds(mean: dict[str, float], se: dict[str, float], lo: dict[str, float],
                hi: dict[str, float], z: float = 2.0) -> list[str]:
    """The measurements whose mean lies within `z` standard errors of a bound of the real
    range that matters (not the one beyond which is `GOOD_SIDE`): inside or outside by less
    than the draws' noise."""
    out = []
    for k, header in MUSICALITY:
        for bound, sign in ((lo[k], "≥"), (hi[k], "≤")):
            beyond_is_good = GOOD_SIDE.get(k, 0) == (1 if sign == "≤" else -1)
            if abs(mean[k] - bound) < z * se[k] and not beyond_is_good:
                out.append(f"{header} {mean[k]:.3f} ± {se[k]:.3f} ({sign} {bound:.3f})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 20 real songs per folder")
    ap.add_argument("--seeds", type=int, default=6,
                    help="seeds per clip (with 3, two samplers differing only in their random "
                         "draws were 6 semitones of pitch range and 2x in dissonance apart)")
    ap.add_argument("--checkpoint", type=Path, help="a model other than the shipped one")
    ap.add_argument("--control", type=float, nargs="+", default=[0.0, 0.7, 1.0])
    ap.add_argument("--ablate", action="store_true", help="also each rule off, at C = 0.7")
    ap.add_argument("--no-track", action="store_true", help="skip rendering + beat tracking")
    ap.add_argument("--key", choices=("auto", "free"), default="auto",
                    help="auto (the default, as `vbgm generate`'s): each clip's key as "
                         "`vbgm generate --key auto` picks it; free: no key plan, the music's "
                         "own key inferred from its first notes")
    args = ap.parse_args()
    seeds = 1 if args.quick else args.seeds
    t0 = time.perf_counter()
    model = load_model(args.checkpoint)
    clips = sorted(p for p in (DATA / "videos").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    analyses = {p.name: analyze(p) for p in clips}
    songs = real_songs(20 if args.quick else None)
    whole = real_reference(songs, None)
    real = real_reference(songs, [a.n_sixteenths - a.start for a in analyses.values()])
    lo = {k: min(real[f][k] for f in REAL_FOLDERS) for k, _ in MUSICALITY}
    hi = {k: max(real[f][k] for f in REAL_FOLDERS) for k, _ in MUSICALITY}
    whole_lo = {k: min(whole[f][k] for f in REAL_FOLDERS) for k, _ in MUSICALITY}
    whole_hi = {k: max(whole[f][k] for f in REAL_FOLDERS) for k, _ in MUSICALITY}
    runs: dict[str, SamplingConfig] = {f"C={c:g}": SamplingConfig(control=c) for c in args.control}
    if args.ablate:
        for name, change in ABLATIONS.items():
            runs[f"C=0.7 {name}"] = SamplingConfig(control=0.7,
                                                           rules=replace(Rules(), **change))
    results: dict[str, dict] = {}
    errors: dict[str, dict] = {}
    per_clip: dict[str, dict] = {}
    for label, config in runs.items():
        rows = []
        for name, a in analyses.items():
            controls = Controls.from_analysis(a)
            for seed in range(seeds):
                key = video_auto_key(a, seed) if args.key == "auto" else None
                (g,) = generate(model, controls, Request(key=key), config, seed=seed)
                plain = " " not in label  # a run of the defaults, not an ablation
                row = score_song(g, controls, a.tempo_bpm, track=not args.no_track and plain)
                per_clip.setdefault(label, {}).setdefault(name, []).append(row)
                rows.append(row)
        results[label] = summarise(rows)
        errors[label] = standard_errors(rows)
        print(f"{label}: {len(rows)} songs [{time.perf_counter() - t0:.0f} s]", flush=True)

    # The table: real ranges, then every run; * marks a value that counts (inside the
    # length-matched range, or beyond it on its good side), + one inside the whole-song range.
    labels = list(results)
    print(f"\n{'measurement':28} {'real, clip length':>17} {'real, whole songs':>17} "
          + " ".join(f"{x:>13}" for x in labels))
    inside: dict[str, int] = {}
    inside_whole: dict[str, int] = {}
    for k, header in MUSICALITY:
        cells = []
        for label in labels:
            v = results[label][k]
            ok = counts(v, k, lo[k], hi[k])
            ok_whole = whole_lo[k] <= v <= whole_hi[k]
            inside[label] = inside.get(label, 0) + ok
            inside_whole[label] = inside_whole.get(label, 0) + ok_whole
            cells.append(f"{v:11.3f}{'*' if ok else ' '}{'+' if ok_whole else ' '}")
        print(f"{header[:28]:28} {lo[k]:8.3f}–{hi[k]:<8.3f} {whole_lo[k]:8.3f}–{whole_hi[k]:<8.3f} "
              + " ".join(cells))
    for k in ("density_fidelity", "beat_hit_rate", "length_error_16ths", "cut_distance_16ths",
              "tempo_found"):
        if k in results[labels[0]]:
            print(f"{k:28} {'':35} " + " ".join(f"{results[x].get(k, math.nan):12.3f}"
                                                  for x in labels))
    print(f"{'counted, clip length (*)':28} {'':35} " + " ".join(f"{inside[x]:>8} / 14"
                                                                 for x in labels))
    print(f"{'inside, whole songs (+)':28} {'':35} " + " ".join(f"{inside_whole[x]:>8} / 14"
                                                                for x in labels))
    for label in labels:
        near = near_bounds(results[label], errors[label], lo, hi)
        print(f"{label}: within 2 standard errors of a bound: {'; '.join(near) or 'none'}")
    demo = demo_cut_distances(model, [c for c in args.control if c >= 0.7], seeds)
    print(f"{'demo clip: worst cut distance':28} {'':35} "
          + " ".join(f"{demo.get(x, math.nan):12.3f}" for x in labels))
    empty_worst = {x: max(max(r["empty_beat_rate"] for r in rows) for rows in per_clip[x].values())
                   for x in labels}
    print(f"{'worst clip empty-beat rate':28} {'':35} " + " ".join(f"{empty_worst[x]:12.3f}"
                                                                 for x in labels))

    # Every song's worst cut (bikes.mp4 has the real clips' cuts) and the demo clip's.
    cut_worst = {x: max((d for d in [demo.get(x, math.nan)]
                         + [r["cut_distance_16ths"] for rows in per_clip[x].values() for r in rows]
                         if np.isfinite(d)), default=math.nan)
                 for x in labels}
    real_dissonance = float(np.mean([real[f]["dissonance_rate"] for f in REAL_FOLDERS]))
    checks = {}
    for label in labels:
        control = runs[label].control
        if control >= 0.7 and " " not in label:
            checks[label] = done_when(results[label], inside[label], lo, hi, real_dissonance,
                                      empty_worst[label], cut_worst[label], control)
            print(f"\n{label}: the issue's checks")
            for what, ok in checks[label]:
                print(f"  {'✓' if ok else '✗'} {what}")

    note = (f"{len(clips)} clips x {seeds} seed(s), shipped model; real range = min..max of "
            f"the means of {', '.join(REAL_FOLDERS)}")
    figs = []
    for label in labels:
        figs.append({"metric": f"music {label}: measurements that count (inside the real "
                               "range of length-matched excerpts, or beyond it on the good side)",
                     "value": inside[label], "unit": "of 14", "note": note})
        figs.append({"metric": f"music {label}: measurements inside the real range "
                               "(whole songs)",
                     "value": inside_whole[label], "unit": "of 14", "note": note})
        if label in demo:
            figs.append({"metric": f"music {label}: worst cut-to-section distance, demo clip",
                         "value": demo[label], "unit": "sixteenths",
                         "note": "goal ≤ 4 (one beat)"})
        for k in ("bass_high_share", "drum_kit_share", "empty_beat_rate", "bar_repetition",
                  "dissonance_rate", "polyphony", "density_fidelity", "beat_hit_rate",
                  "tempo_found"):
            if k in results[label] and np.isfinite(results[label][k]):
                figs.append({"metric": f"music {label}: {k}",
                             "value": round(results[label][k], 4), "unit": "", "note": note})
    out = {"name": "music", "figures": figs, "real_clip_length": real, "real_whole": whole,
           "real_range": {k: [lo[k], hi[k]] for k, _ in MUSICALITY},
           "real_range_whole": {k: [whole_lo[k], whole_hi[k]] for k, _ in MUSICALITY},
           "runs": results, "standard_errors": errors, "worst_clip_empty_beat_rate": empty_worst,
           "demo_worst_cut_distance_16ths": demo,
           "done_when": {x: [{"check": what, "holds": ok} for what, ok in c]
                         for x, c in checks.items()},
           "per_clip": {x: {clip: summarise(rows) for clip, rows in clips.items()}
                        for x, clips in per_clip.items()},
           "seconds": round(time.perf_counter() - t0, 1)}
    write_text_atomic(RESULTS, json.dumps(out, indent=1, default=float) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
