"""Pose prediction on a video: per-frame keypoints as JSON lines, an overlay video with the
skeleton, and optional One-Euro temporal smoothing.

Boxes per frame come from a track file (a JSON list of {"frame", "bbox": [x, y, w, h],
"track_id"?, "category_id"?, "score"?}; frames are 0-based decode order) or are the whole frame.
The overlay is re-encoded (H.264 when available) at the input's frame rate with one output frame
per input frame, so its duration equals the input's.

One-Euro filter (Casiez et al., CHI 2012): a low-pass filter whose cut-off rises with the speed of
the signal, so slow jitter is smoothed strongly and fast motion lags little. It is applied per
track to each keypoint's x and y.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ap10k.atomic import atomic_path, write_text_atomic
from ap10k.errors import AP10KError
from ap10k.pipeline import PipelineConfig, Sample
from ap10k.transforms import (
    decode_heatmaps,
    heatmap_to_image,
    invert_affine,
    normalize_image,
    rescore,
    warp_image,
)

SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether a path names a video file (by its suffix)."""
    return Path(path).suffix.lower() in SUFFIXES


@dataclass
class OneEuro:
    """One-Euro filter settings: `min_cutoff` (Hz) sets smoothing at rest, `beta` how fast the
    cut-off rises with speed, `d_cutoff` (Hz) the smoothing of the speed estimate."""

    min_cutoff: float = 1.0
    beta: float = 0.1
    d_cutoff: float = 1.0

    def filter(self, signal: np.ndarray, fps: float) -> np.ndarray:
        """Smooth `signal` (T, ...) sampled at `fps`, every trailing element independently."""
        signal = np.asarray(signal, dtype=np.float64)
        if len(signal) == 0:
            return signal.copy()
        out = np.empty_like(signal)
        out[0] = signal[0]
        speed = np.zeros_like(signal[0])
        for t in range(1, len(signal)):
            raw_speed = (signal[t] - out[t - 1]) * fps
            speed = speed + _alpha(self.d_cutoff, fps) * (raw_speed - speed)
            cutoff = self.min_cutoff + self.beta * np.abs(speed)
            out[t] = out[t - 1] + _alpha(cutoff, fps) * (signal[t] - out[t - 1])
        return out


def _alpha(cutoff: float | np.ndarray, fps: float) -> float | np.ndarray:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau * fps)


def jitter(track: np.ndarray) -> float:
    """Mean magnitude of the second difference of a (T, ..., 2) track: frame-to-frame shake
    that smooth motion does not have (pixels per frame²)."""
    track = np.asarray(track, dtype=np.float64)
    if len(track) < 3:
        return 0.0
    acc = track[2:] - 2 * track[1:-1] + track[:-2]
    return float(np.linalg.norm(acc, axis=-1).mean())


def read_tracks(path: str | os.PathLike[str], category_id: int) -> dict[int, list[dict[str, Any]]]:
    """Boxes by frame from a track file; AP10KError naming the entry when one is malformed."""
    from ap10k.dataset import read_json

    data = read_json(path)
    if not isinstance(data, list):
        raise AP10KError(f"{path}: expected a JSON list of {{frame, bbox, track_id?}} entries")
    out: dict[int, list[dict[str, Any]]] = {}
    for j, r in enumerate(data):
        bbox = r.get("bbox") if isinstance(r, dict) else None
        frame = r.get("frame") if isinstance(r, dict) else None
        if (not isinstance(frame, int) or frame < 0 or not isinstance(bbox, list)
                or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox)):
            raise AP10KError(f"{path}: entry {j} needs 'frame' (≥ 0) and 'bbox': [x, y, w, h]")
        out.setdefault(frame, []).append({
            "bbox": [float(v) for v in bbox], "track_id": int(r.get("track_id", 0)),
            "category_id": int(r.get("category_id", category_id)),
            "score": float(r.get("score", 1.0))})
    return out


def _frames(path: Path) -> tuple[Any, Any]:
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise AP10KError(f"{path}: cannot open the video ({type(exc).__name__})") from None
    if not container.streams.video:
        container.close()
        raise AP10KError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def predict_video(model: nn.Module, pipe: PipelineConfig, video: str | os.PathLike[str],
                  out: str | os.PathLike[str], tracks: dict[int, list[dict[str, Any]]] | None,
                  category_id: int = 1, flip_test: bool = True,
                  smoothing: OneEuro | None = None, threshold: float = 0.2,
                  batch_size: int = 32) -> dict[str, Any]:
    """Predict every frame of `video` and write OUT/<stem>.jsonl and OUT/<stem>_pose.mp4.

    `tracks` gives boxes by frame (None: the whole frame is the box). Crops of several frames
    share one forward pass (`batch_size` crops); the overlay is drawn in a second decoding pass,
    so no more than a batch of frames is held in memory. Returns a summary with the frame count,
    rate and the output paths.
    """
    import av

    video, out = Path(video), Path(out)
    container, stream = _frames(video)
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    records: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], np.ndarray, dict[str, Any]]] = []
    try:
        for index, frame in enumerate(container.decode(stream)):
            rgb = frame.to_ndarray(format="rgb24")
            height, width = rgb.shape[:2]
            boxes = (tracks.get(index, []) if tracks is not None
                     else [{"bbox": [0.0, 0.0, float(width), float(height)], "track_id": 0,
                            "category_id": category_id, "score": 1.0}])
            record: dict[str, Any] = {"frame": index, "time": round(index / fps, 4),
                                      "poses": []}
            records.append(record)
            pending += [(record, _crop(rgb, b, pipe), b) for b in boxes]
            if len(pending) >= batch_size:
                _predict_batch(model, pipe, pending, flip_test)
                pending = []
    except av.FFmpegError as exc:
        raise AP10KError(f"{video}: cannot decode frame {len(records)} ({exc})") from None
    finally:
        container.close()
    _predict_batch(model, pipe, pending, flip_test)
    if not records:
        raise AP10KError(f"{video}: no frames decoded")
    if smoothing is not None:
        _smooth(records, smoothing, fps)
    stem = video.stem
    write_text_atomic(out / f"{stem}.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    overlay = out / f"{stem}_pose.mp4"
    _write_overlay(video, overlay, records, fps, threshold)
    return {"frames": len(records), "fps": fps, "jsonl": str(out / f"{stem}.jsonl"),
            "overlay": str(overlay)}


def _crop(rgb: np.ndarray, box: dict[str, Any], pipe: PipelineConfig
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalised crop, inverse crop matrix, clamped box) of one box, as at test time."""
    from ap10k.pipeline import eval_matrix
    from ap10k.transforms import clamp_box

    height, width = rgb.shape[:2]
    clamped = clamp_box(box["bbox"], width, height)
    sample = Sample(Path(), 0, 0, box["category_id"], clamped,
                    float(clamped[2] * clamped[3]), np.zeros((0, 3)))
    m = eval_matrix(sample, pipe)
    crop = normalize_image(warp_image(rgb, m, (pipe.input_size, pipe.input_size)))
    return crop, invert_affine(m), clamped


def _predict_batch(model: nn.Module, pipe: PipelineConfig,
                   pending: list[tuple[dict[str, Any], Any, dict[str, Any]]],
                   flip_test: bool) -> None:
    """Poses for a batch of crops, appended to their frames' records (as `predict_samples`)."""
    from ap10k.inference import predict_heatmaps

    if not pending:
        return
    device = next(model.parameters()).device
    crops = torch.from_numpy(np.stack([c[0] for _, c, _ in pending])).to(device)
    with torch.no_grad():
        heatmaps = predict_heatmaps(model, crops, flip_test).float().cpu().numpy()
    coords, maxvals = decode_heatmaps(heatmaps)
    for i, (record, (_, inverse, clamped), box) in enumerate(pending):
        xy = heatmap_to_image(coords[i], pipe.stride, inverse)
        kps = np.concatenate([xy, maxvals[i][:, None]], axis=1)
        record["poses"].append({
            "track_id": box["track_id"], "category_id": box["category_id"],
            "bbox": [round(float(v), 2) for v in clamped],
            "score": round(float(rescore(maxvals[i], box["score"])[0]), 6),
            "keypoints": [round(float(v), 3) for v in kps.reshape(-1)]})


def _smooth(records: list[dict[str, Any]], smoothing: OneEuro, fps: float) -> None:
    """One-Euro filter each track's keypoint coordinates in place (over the frames it is in)."""
    by_track: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        for p in r["poses"]:
            by_track.setdefault(p["track_id"], []).append(p)
    for poses in by_track.values():
        kps = np.array([p["keypoints"] for p in poses]).reshape(len(poses), -1, 3)
        kps[:, :, :2] = smoothing.filter(kps[:, :, :2], fps)
        for p, k in zip(poses, kps):
            p["keypoints"] = [round(float(v), 3) for v in k.reshape(-1)]


def _write_overlay(video: Path, path: Path, records: list[dict[str, Any]], fps: float,
                   threshold: float) -> None:
    """Decode `video` again and encode its frames with their poses drawn, one output frame per
    input frame (H.264 when available), at the input's frame rate."""
    import av
    from PIL import Image

    from ap10k.draw import Pose, draw_poses

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    rate = Fraction(fps).limit_denominator(100000)
    source, in_stream = _frames(video)
    with source, atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = "yuv420p"
        for frame, rec in zip(source.decode(in_stream), records):
            rgb = frame.to_ndarray(format="rgb24")
            if rec["frame"] == 0:  # even sizes, as yuv420p needs
                stream.width = rgb.shape[1] - rgb.shape[1] % 2
                stream.height = rgb.shape[0] - rgb.shape[0] % 2
            poses = [Pose(np.array(p["keypoints"]).reshape(-1, 3), tuple(p["bbox"]),
                          f"{p['track_id']}") for p in rec["poses"]]
            drawn = np.asarray(draw_poses(Image.fromarray(rgb), poses, threshold=threshold)
                               .convert("RGB"))[:stream.height, :stream.width]
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(drawn), format="rgb24")
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
