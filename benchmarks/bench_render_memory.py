"""Peak memory of rendering (and muxing) 1, 10 and 60 minutes of music: whole-array vs blocks.

Each case runs in a fresh process (`--case`), so its peak RSS (ru_maxrss) is its own; the
FluidSynth program's peak is reported beside it (a child process). The music is
bench_render.py's five-track song; the mux goes onto a 64x64, 1 fps clip of the same length
(stream copy: the audio side is what is measured). "whole" is `render_midi` + `mux` of the array
(the path before issue 13's item 4), "blocks" is `render_to_file` + `mux` of the AudioFile.
The whole path is skipped at 60 minutes (it needs several GB). Writes
benchmarks/results/render_memory.json (run_all.py's convention).

    python benchmarks/bench_render_memory.py [--quick]   # --quick: 1 and 10 minutes only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


def run_case(path: str, minutes: float, mux_too: bool) -> dict:
    """Render (and mux) `minutes` of music by `path` ("whole" | "blocks") in this process."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_render import five_track_song
    from vbgm.demo_video import make_demo_video
    from vbgm.mux import mux
    from vbgm.render import render_midi, render_to_file

    score = five_track_song(minutes * 60)
    with tempfile.TemporaryDirectory(prefix="vbgm-mem-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        if mux_too:
            make_demo_video(clip, seconds=minutes * 60, size=(64, 64), fps=1)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        if path == "whole":
            audio = render_midi(score, SR, backend="fluidsynth")
        else:
            audio = render_to_file(score, Path(tmp) / "music.f32", SR, backend="fluidsynth")
        render_s = time.perf_counter() - t
        t = time.perf_counter()
        if mux_too:
            mux(clip, audio, SR, Path(tmp) / "out.mp4")
        mux_s = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"path": path, "minutes": minutes, "peak_rss_mib": round(peak / 1024, 1),
            "rss_before_mib": round(base / 1024, 1), "fluidsynth_peak_mib": round(child / 1024, 1),
            "render_s": round(render_s, 2), "mux_s": round(mux_s, 2), "muxed": mux_too}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", nargs=2, metavar=("PATH", "MINUTES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case[0], float(args.case[1]), True)))
        return
    rows = []
    for minutes in (1, 10) if args.quick else (1, 10, 60):
        for path in ("whole", "blocks"):
            if path == "whole" and minutes > 10:
                continue
            out = subprocess.run([sys.executable, __file__, "--case", path, str(minutes)],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{path:6s} {minutes:3g} min: peak RSS {row['peak_rss_mib']:7.1f} MiB "
                  f"(fluidsynth {row['fluidsynth_peak_mib']} MiB), render {row['render_s']} s, "
                  f"mux {row['mux_s']} s")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    figures = [{"metric": f"peak RSS, render + mux {r['minutes']:g} min of music, {r['path']}",
                "value": r["peak_rss_mib"], "unit": "MiB",
                "note": f"fluidsynth, 5 tracks, {SR} Hz; FluidSynth process "
                        f"{r['fluidsynth_peak_mib']} MiB; render {r['render_s']} s, "
                        f"mux {r['mux_s']} s; {machine}"} for r in rows]
    target = ROOT / "benchmarks" / "results" / "render_memory.json"
    target.write_text(json.dumps({"name": "render_memory", "figures": figures, "runs": rows},
                                 indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
