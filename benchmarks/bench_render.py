"""Benchmark the audio end of the pipeline: MIDI → audio with each synthesiser, and muxing onto a
60-second 720p clip (stream copy, and forced H.264 re-encode for comparison).

The MIDI is 60 s of five-track music (drums, bass, piano, guitar, strings) at 120 bpm; the clip is
made with `make_demo_video` at 1280x720, 30 fps. Prints the figures (with the loudness and peak of
each render as a listen-check by measurement) and writes benchmarks/results/render.json
(run_all.py's convention: "figures", the details beside them).

    python benchmarks/bench_render.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import symusic
from vbgm.atomic import write_text_atomic
from vbgm.demo_video import make_demo_video
from vbgm.mux import MuxConfig, mux
from vbgm.render import choose_backend, loudness_db, peak_db, render_midi

ROOT = Path(__file__).resolve().parents[1]
SR = 44100
TPQ = 480


def five_track_song(seconds: float, bpm: float = 120.0) -> symusic.Score:
    """A 4/4 I–vi–IV–V song with one GM track per LPD-5 instrument class."""
    score = symusic.Score(TPQ)
    score.tempos.append(symusic.Tempo(0, bpm))
    bars = max(1, round(seconds * bpm / 60 / 4))
    tracks = {name: symusic.Track(name, program, name == "drums") for name, program in
              (("drums", 0), ("bass", 33), ("piano", 0), ("guitar", 25), ("strings", 48))}
    roots = (48, 45, 41, 43)  # C, A, F, G
    bar = 4 * TPQ
    for b in range(bars):
        t0, root = b * bar, roots[b % 4]
        minor = 3 if b % 4 == 1 else 4
        chord = (root + 12, root + 12 + minor, root + 19)
        for i in range(8):  # eighths: hi-hat, kick on 1 and 3, snare on 2 and 4, guitar arpeggio
            t = t0 + i * TPQ // 2
            tracks["drums"].notes.append(symusic.Note(t, TPQ // 4, 42, 70))
            if i in (0, 4):
                tracks["drums"].notes.append(symusic.Note(t, TPQ // 4, 36, 110))
            if i in (2, 6):
                tracks["drums"].notes.append(symusic.Note(t, TPQ // 4, 38, 100))
            tracks["guitar"].notes.append(symusic.Note(t, TPQ // 2, chord[i % 3] + 12, 70))
        for q in range(4):
            tracks["bass"].notes.append(symusic.Note(t0 + q * TPQ, TPQ, root - 12, 95))
        for h in range(2):
            for p in chord:
                tracks["piano"].notes.append(symusic.Note(t0 + h * 2 * TPQ, 2 * TPQ, p, 80))
        for p in chord:
            tracks["strings"].notes.append(symusic.Note(t0, bar, p + 12, 60))
    score.tracks.extend(tracks.values())
    return score


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def figures(results: dict) -> list[dict]:
    """The headline figures of a run (`results` as main builds it)."""
    secs = results["seconds"]
    machine = f"{results['machine']}, {results['cpu_count']} CPUs"
    figs = []
    for backend, r in results["render"].items():
        note = f"{r['soundfont']}, {results['sample_rate']} Hz, {machine}"
        figs += [
            {"metric": f"render {secs:g} s of 5-track MIDI, {backend}", "value": r["seconds"],
             "unit": "s", "note": note},
            {"metric": f"render speed, {backend}", "value": r["realtime_x"],
             "unit": "x real time", "note": note},
            {"metric": f"render loudness (gated RMS), {backend}", "value": r["loudness_db"],
             "unit": "dBFS", "note": f"peak {r['peak_db']} dBFS, plain RMS {r['rms_db']} dBFS"},
        ]
    for name, r in results["mux"].items():
        how = "video stream copied" if r["video_copied"] else "video re-encoded to H.264"
        figs.append({"metric": f"mux onto {secs:g} s 720p clip, {name}", "value": r["seconds"],
                     "unit": "s", "note": f"{how}, output {r['output_mib']} MiB, {machine}"})
    figs.append({"metric": f"make_demo_video {secs:g} s 1280x720 30 fps",
                 "value": results["demo_video_720p_s"], "unit": "s", "note": machine})
    return figs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    score = five_track_song(args.seconds)
    results: dict = {"seconds": args.seconds, "sample_rate": SR, "cpu_count": os.cpu_count(),
                     "machine": platform.machine(), "render": {}, "mux": {}}

    with tempfile.TemporaryDirectory(prefix="vbgm-bench-") as tmp:
        mid = Path(tmp) / "song.mid"
        score.dump_midi(str(mid))
        audio = None
        for backend in ("fluidsynth", "symusic"):
            try:
                _, sf = choose_backend(backend)
            except Exception as exc:  # noqa: BLE001 - report a missing backend, keep going
                print(f"render {backend:10s}: unavailable ({exc})")
                continue
            rendered, dt = timed(render_midi, mid, SR, backend=backend)
            audio = rendered if audio is None else audio
            row = {"seconds": round(dt, 3), "realtime_x": round(args.seconds / dt, 1),
                   "soundfont": sf.name, "audio_s": round(len(rendered) / SR, 3),
                   "loudness_db": round(loudness_db(rendered, SR), 2),
                   "peak_db": round(peak_db(rendered), 2),
                   "rms_db": round(float(20 * np.log10(np.sqrt(np.mean(rendered ** 2)))), 2)}
            results["render"][backend] = row
            print(f"render {backend:10s}: {dt:6.2f} s for {args.seconds:.0f} s of 5-track MIDI "
                  f"({row['realtime_x']}x real time), {row['audio_s']} s audio, gated RMS "
                  f"{row['loudness_db']} dBFS, RMS {row['rms_db']} dBFS, "
                  f"peak {row['peak_db']} dBFS [{sf.name}]")

        clip = Path(tmp) / "clip.mp4"
        demo, dt = timed(make_demo_video, clip, seconds=args.seconds, size=(1280, 720), fps=30,
                         progress=True)
        results["demo_video_720p_s"] = round(dt, 2)
        print(f"make_demo_video 1280x720 {demo.n_frames} frames: {dt:.2f} s")
        for name, cfg in (("copy", MuxConfig()), ("reencode", MuxConfig(reencode=True))):
            out = Path(tmp) / f"out_{name}.mp4"
            res, dt = timed(mux, clip, audio, SR, out, config=cfg)
            results["mux"][name] = {"seconds": round(dt, 3), "video_copied": res.video_copied,
                                    "output_mib": round(out.stat().st_size / 2 ** 20, 2)}
            print(f"mux {name:8s} onto {args.seconds:g} s 720p: {dt:6.2f} s "
                  f"(video copied: {res.video_copied}, {results['mux'][name]['output_mib']} MiB)")

    target = ROOT / "benchmarks" / "results" / "render.json"
    out = {"name": "render", "figures": figures(results), **results}
    write_text_atomic(target, json.dumps(out, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
