"""Speed and memory of `vbgm.video.analyze`.

1. Real-time factor (video seconds per wall-clock second; CPU seconds are printed too, since the
   machine may be shared) on a generated 60 s 1280×720 30 fps H.264 clip, with the default DIS
   flow and with the reference's Farneback, and on every real clip in ../shared/data/videos.
2. Peak memory (max RSS of a fresh process) analysing a one-hour video. To keep the benchmark
   cheap the hour is 320×180 at 30 fps (108,000 frames, all decoded and analysed; encoding it is
   the slow part, so it is made once and cached in the temp dir), next to the same run on a
   60 s clip: memory that grew with length would show as a difference between the two.

Usage: python benchmarks/bench_video.py [--skip-hour]    → table + benchmarks/results/video.json
(run_all.py's convention: "figures", the per-clip rows beside them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vbgm.atomic import write_text_atomic
from vbgm.synthetic_video import pan_frames, positions_from_velocity, write_video
from vbgm.video import AnalysisConfig, analyze

ROOT = Path(__file__).resolve().parent
VIDEOS = ROOT.parent.parent / "shared" / "data" / "videos"
CACHE = Path(tempfile.gettempdir()) / "vbgm-bench-video"


def velocity(t: float) -> float:
    """Pans that change speed and direction every few seconds (a busy, realistic load)."""
    return [0.05, 0.3, -0.6, 0.15, -0.2, 0.9][int(t // 2.5) % 6]


def make_clip(path: Path, seconds: float, height: int, width: int) -> Path:
    """A panning-texture H.264 clip (cached)."""
    if not path.exists():
        n = round(seconds * 30)
        tmp = path.with_suffix(".part.mp4")
        write_video(tmp, pan_frames(positions_from_velocity(velocity, n, 30), height, width), 30,
                    options={"preset": "ultrafast"})
        tmp.rename(path)
    return path


def timed(path: Path, config: AnalysisConfig = AnalysisConfig()) -> dict:
    """Analyse once; wall and CPU seconds and the real-time factors."""
    wall, cpu = time.perf_counter(), time.process_time()
    a = analyze(path, config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"video": path.name, "flow": config.flow, "duration_s": round(a.duration_s, 2),
            "frames": a.n_frames, "size": f"{a.width}x{a.height}", "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "rtf_wall": round(a.duration_s / wall, 1),
            "rtf_cpu": round(a.duration_s / cpu, 1)}


def peak_memory(path: Path) -> dict:
    """Run analyze in a fresh process; its peak RSS (MiB) and wall time."""
    code = ("import resource, sys; from vbgm.video import analyze; a = analyze(sys.argv[1]); "
            "print(a.duration_s, a.n_frames, len(a.bars), len(a.beats), "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True).stdout.split()
    return {"video": path.name, "duration_s": round(float(out[0]), 1), "frames": int(out[1]),
            "bars": int(out[2]), "beats": int(out[3]), "peak_rss_mib": round(int(out[4]) / 1024),
            "wall_s": round(time.perf_counter() - start, 1)}


def figures(results: dict) -> list[dict]:
    """The headline figures of a run (`results` as main builds it): wall-clock real-time factor
    per clip (CPU time in the note, steadier on a shared machine) and peak memory."""
    load = f"{results['cpus']} CPUs, load {results['load_avg_1m']:.1f}"
    figs = [{"metric": f"analyze {r['video']}, {r['flow']} flow", "value": r["rtf_wall"],
             "unit": "x real time",
             "note": f"{r['size']}, {r['duration_s']:g} s; wall {r['wall_s']} s, "
                     f"CPU {r['cpu_s']} s ({r['rtf_cpu']}x on CPU time); {load}"}
            for r in results["speed"]]
    figs += [{"metric": f"analyze peak RSS, {r['video']}", "value": r["peak_rss_mib"],
              "unit": "MiB", "note": f"{r['duration_s']:g} s, {r['frames']} frames, fresh process, "
                                     f"wall {r['wall_s']} s"}
             for r in results["memory"]]
    return figs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-hour", action="store_true", help="skip the one-hour memory run")
    args = parser.parse_args()
    CACHE.mkdir(exist_ok=True)
    results: dict = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], "speed": [],
                     "memory": []}

    hd = make_clip(CACHE / "pan720p60s.mp4", 60, 720, 1280)
    results["speed"].append(timed(hd))
    results["speed"].append(timed(hd, AnalysisConfig(flow="farneback")))
    for path in sorted(VIDEOS.iterdir()) if VIDEOS.is_dir() else []:
        results["speed"].append(timed(path))
    print(f"{'video':28} {'flow':9} {'dur s':>7} {'frames':>7} {'size':>10} {'wall s':>7} "
          f"{'cpu s':>7} {'RTF wall':>9} {'RTF cpu':>8}")
    for r in results["speed"]:
        print(f"{r['video']:28} {r['flow']:9} {r['duration_s']:7.1f} {r['frames']:7d} "
              f"{r['size']:>10} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} {r['rtf_wall']:9.1f} "
              f"{r['rtf_cpu']:8.1f}")

    short = make_clip(CACHE / "pan180p60s.mp4", 60, 180, 320)
    results["memory"].append(peak_memory(short))
    if not args.skip_hour:
        hour = make_clip(CACHE / "pan180p3600s.mp4", 3600, 180, 320)
        results["memory"].append(peak_memory(hour))
    print(f"\n{'video':24} {'dur s':>8} {'frames':>8} {'bars':>6} {'beats':>6} "
          f"{'peak RSS MiB':>13} {'wall s':>7}")
    for r in results["memory"]:
        print(f"{r['video']:24} {r['duration_s']:8.1f} {r['frames']:8d} {r['bars']:6d} "
              f"{r['beats']:6d} {r['peak_rss_mib']:13d} {r['wall_s']:7.1f}")
    results["this_process_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out = {"name": "video", "figures": figures(results), **results}
    write_text_atomic(ROOT / "results" / "video.json", json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {ROOT / 'results' / 'video.json'}")


if __name__ == "__main__":
    main()
