"""Fit the control mapping of `vbgm.controls` on real footage (and print the constants).

Density: 16 thresholds log-spaced between
  lo = 2.5 × the 95th-percentile flow speed of a still scene with camera noise (σ = 2 grey levels,
       H.264-encoded; what a tripod shot looks like after compression), so still scenes map to 1;
  hi = the fastest 2-s bar (tempo fixed at 120 bpm, so the fit does not move with the tempo
       estimate) among the real clips in ../shared/data/videos (bikes.mp4's pan), so the
       fastest real footage reaches the top class;
  log spacing because perceived speed is roughly proportional to log speed: each class is ×1.42.
Strength: 9 thresholds = the deciles of the pooled visual-beat weights of the real clips, each
  clip counting equally (a beat weighs 1 / its clip's count; otherwise the 80-s clip decides
  alone), leaving out cuts and each clip's strongest beat (weight 1 by construction, so class 10
  whatever the thresholds). The classes are then about equally used on real footage; class 1,
  the weakest tenth, is what the generator drops, as the reference does.

Usage: python benchmarks/fit_controls.py [VIDEO_DIR]   (writes benchmarks/fits/controls_fit.json;
a fit, not a benchmark, so it stays out of benchmarks/results/ and `make bench`)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from vbgm.atomic import write_text_atomic
from vbgm.synthetic_video import pan_frames, write_video
from vbgm.video import analyze_motion, read_motion

ROOT = Path(__file__).resolve().parent
DEFAULT_VIDEOS = ROOT.parent.parent / "shared" / "data" / "videos"


def one_sig(x: float) -> float:
    """Round to one significant figure (the fit is not more precise than that)."""
    return float(f"{x:.1g}")


def main() -> None:
    videos = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_VIDEOS
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        still = next(pan_frames([(0.0, 0.0)], 360, 640))
        frames = (np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8)
                  for _ in range(90))
        write_video(Path(tmp) / "still.mp4", frames, 30)
        noise = float(np.percentile(read_motion(Path(tmp) / "still.mp4").speed, 95))
    bar_flows, weights, mass, per_clip = [], [], [], {}
    for path in sorted(videos.iterdir()):
        a = analyze_motion(read_motion(path), tempo=120.0, source=path.name)  # 2-s bars
        flows = [b.flow for b in a.bars]
        w = [b.weight for b in a.beats if not b.is_cut and b.weight < 1.0]
        bar_flows += flows
        weights += w
        mass += [1.0 / len(w)] * len(w)
        per_clip[path.name] = {"bar_flow_min": min(flows), "bar_flow_max": max(flows),
                               "beats": len(w)}
    lo, hi = one_sig(2.5 * noise), one_sig(max(bar_flows))
    density = np.geomspace(lo, hi, 16)
    order = np.argsort(weights)
    cdf = (np.cumsum(np.asarray(mass)[order]) - 0.5 * np.asarray(mass)[order]) / sum(mass)
    strength = np.round(np.interp(np.arange(1, 10) / 10, cdf, np.asarray(weights)[order]), 2)
    result = {"still_noise_p95": noise, "density_lo": lo, "density_hi": hi,
              "density_thresholds": density.round(6).tolist(),
              "strength_thresholds": strength.tolist(), "n_beats": len(weights),
              "clips": per_clip}
    print(json.dumps(result, indent=1))
    write_text_atomic(ROOT / "fits" / "controls_fit.json", json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
