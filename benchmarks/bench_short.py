"""End-to-end time of `vbgm generate` on short clips, with the breakdown of where it goes.

Clips: cup.mp4 (8.1 s, 640x360, with sound) from the shared videos, and its first 0.5 s cut
with PyAV (re-encoded, so it starts on a key frame). Each is run as a fresh `vbgm generate`
process (what a user waits for), timed from outside; the stages come from the command's own
log ("[x s]" per stage); "startup" is the rest: interpreter, imports, model and SoundFont loading.
A third run does both clips in one process (a batch: startup paid once). The fourth clip is 4K:
cup.mp4's first 5 s scaled to 3840x2160 and re-encoded (made once in the temporary folder).

Runs are kept per `--label` (e.g. before / after a change) in benchmarks/results/short.json,
whose figures are those of the latest label (run_all.py's convention).

    python benchmarks/bench_short.py [--label after] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = Path(os.environ.get("VBGM_DATA", ROOT.parent / "shared" / "data")) / "videos"
RESULTS = ROOT / "benchmarks" / "results" / "short.json"
STAGE = re.compile(r"^\s+(analysed|generated|rendered \+ muxed).*\[([\d.]+) s(?: \+ ([\d.]+) s)?\]")


def cut_clip(src: Path, dst: Path, seconds: float, size: tuple[int, int] | None = None) -> None:
    """The first `seconds` of `src`'s picture re-encoded to H.264 with PyAV (scaled to `size`,
    e.g. 3840x2160 for a 4K clip of real footage)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        width, height = size or (vin.width, vin.height)
        vout = out.add_stream("libx264", rate=vin.average_rate or Fraction(30))
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.time_base = vin.time_base  # the source's timestamps, kept frame by frame
        vout.options = {"preset": "veryfast" if size is None else "ultrafast"}
        for frame in inp.decode(vin):
            if frame.time is not None and frame.time >= seconds:
                break
            picture = frame.reformat(width, height, format="yuv420p")
            picture.pts, picture.time_base = frame.pts, frame.time_base
            out.mux(vout.encode(picture))
        out.mux(vout.encode(None))


def run_generate(videos: list[Path], out: Path) -> dict:
    """Time one `vbgm generate` process; its stage times summed over the videos."""
    cmd = [sys.executable, "-m", "vbgm.cli", "generate", *map(str, videos), "-o", str(out),
           "--force", "--quiet"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    total = time.perf_counter() - start
    stages = {"analyze": 0.0, "generate": 0.0, "render": 0.0, "mux": 0.0}
    for line in proc.stdout.splitlines():
        m = STAGE.match(line)
        if not m:
            continue
        if m.group(1) == "analysed":
            stages["analyze"] += float(m.group(2))
        elif m.group(1) == "generated":
            stages["generate"] += float(m.group(2))
        else:
            stages["render"] += float(m.group(2))
            stages["mux"] += float(m.group(3))
    startup = total - sum(stages.values())
    return {"total_s": round(total, 2), "startup_s": round(startup, 2),
            **{f"{k}_s": round(v, 2) for k, v in stages.items()}}


def import_seconds() -> float:
    """Seconds to import what `vbgm generate` imports before its first video (fresh process)."""
    code = ("import time; t = time.perf_counter(); import vbgm.cli, vbgm.pipeline, "
            "vbgm.video, vbgm.render, vbgm.mux; print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after")
    parser.add_argument("--repeat", type=int, default=3, help="best of N per case")
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    with tempfile.TemporaryDirectory(prefix="vbgm-short-") as tmp:
        cup = VIDEOS / "cup.mp4"
        half = Path(tmp) / "half.mp4"
        cut_clip(cup, half, 0.5)
        uhd = Path(tempfile.gettempdir()) / "vbgm-bench-short-4k-5s.mp4"  # made once: ~1 min
        if not uhd.is_file():
            cut_clip(cup, uhd.with_suffix(".part.mp4"), 5.0, (3840, 2160))
            uhd.with_suffix(".part.mp4").replace(uhd)
        cases = {"cup 8.1 s": ([cup], Path(tmp) / "cup_out.mp4", 8.1),
                 "cut 0.5 s": ([half], Path(tmp) / "half_out.mp4", 0.5),
                 "batch of both": ([cup, half], Path(tmp) / "batch", 8.6),
                 "4K 5 s": ([uhd], Path(tmp) / "uhd_out.mp4", 5.0)}
        run: dict = {"imports_s": round(min(import_seconds() for _ in range(repeat)), 2)}
        for name, (videos, out, seconds) in cases.items():
            best = min((run_generate(videos, out) for _ in range(repeat)),
                       key=lambda r: r["total_s"])
            best["x_clip_length"] = round(best["total_s"] / seconds, 2)
            run[name] = best
            print(f"{args.label:8s} {name:14s}: {best}")
    print(f"{args.label:8s} imports: {run['imports_s']} s")
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    runs = data.get("runs", {})
    runs[args.label] = run
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    figures = []
    for name in cases:
        r = run[name]
        figures.append({"metric": f"vbgm generate end to end, {name}", "value": r["total_s"],
                        "unit": "s", "note": f"{r['x_clip_length']}x clip length; startup "
                        f"{r['startup_s']} s, analyze {r['analyze_s']}, generate "
                        f"{r['generate_s']}, render {r['render_s']}, mux {r['mux_s']} s; "
                        f"{args.label}; {machine}"})
    figures.append({"metric": "vbgm generate imports", "value": run["imports_s"], "unit": "s",
                    "note": f"{args.label}; {machine}"})
    RESULTS.write_text(json.dumps({"name": "short", "figures": figures, "label": args.label,
                                   "runs": runs}, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
