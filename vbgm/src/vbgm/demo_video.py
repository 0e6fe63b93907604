"""A procedural test video with known rhythm: shapes that speed up and slow down, two hard cuts.

Used by `make demo` (a video to put music on without shipping one) and by tests that need a clip
whose ground truth is known: the cut times and the per-frame speed are returned with the file.
Everything is drawn with numpy and encoded to H.264 MP4 with PyAV; a seed fixes every choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vbgm.atomic import atomic_path
from vbgm.errors import VbgmError
from vbgm.progress import stage

# Background colours of the scenes (RGB); consecutive scenes differ strongly so a cut is obvious.
BACKGROUNDS: tuple[tuple[int, int, int], ...] = (
    (24, 32, 72), (236, 214, 160), (20, 96, 60), (120, 24, 40), (200, 200, 210),
)


@dataclass
class DemoVideo:
    """What make_demo_video wrote, with its ground truth.

    cuts: times (s) of the first frame of each new scene (two hard cuts).
    speed: (n_frames,) speed multiplier of every frame (1 = the scene's base speed).
    """

    path: Path
    fps: int
    size: tuple[int, int]
    n_frames: int
    cuts: tuple[float, ...]
    speed: np.ndarray

    @property
    def seconds(self) -> float:
        """Duration of the video."""
        return self.n_frames / self.fps


@dataclass
class _Shape:
    kind: str  # "circle" | "box"
    radius: float  # circle radius or half the box side, in pixels
    color: np.ndarray  # (3,) uint8
    pos: np.ndarray  # (2,) float x, y of the centre
    vel: np.ndarray  # (2,) float pixels per second at speed 1
    yuv: np.ndarray  # (3,) uint8 the colour in BT.601 YUV


def _scene_shapes(rng: np.random.Generator, width: int, height: int, background: np.ndarray
                  ) -> list[_Shape]:
    shapes = []
    scale = min(width, height)
    for _ in range(int(rng.integers(3, 7))):
        radius = float(rng.uniform(0.05, 0.12) * scale)
        color = rng.integers(0, 256, size=3)
        if np.abs(color - background).sum() < 200:  # keep shapes visible against the background
            color = 255 - background
        angle = rng.uniform(0, 2 * np.pi)
        centre = [rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)]
        shapes.append(_Shape(
            kind=str(rng.choice(["circle", "box"])),
            radius=radius,
            color=color.astype(np.uint8),
            pos=np.array(centre),
            vel=np.array([np.cos(angle), np.sin(angle)]) * rng.uniform(0.4, 0.8) * scale,
            yuv=rgb_to_yuv(color),
        ))
    return shapes


def speed_curve(n_frames: int, fps: int, period_s: float = 4.0) -> np.ndarray:
    """Speed multiplier per frame: a smooth swell between 0.15x and 2x with the given period."""
    t = np.arange(n_frames) / fps
    return 0.15 + 1.85 * (0.5 - 0.5 * np.cos(2 * np.pi * t / period_s))


def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range (Y, Cb, Cr) of uint8 RGB colours (..., 3)."""
    r, g, b = (np.asarray(rgb, dtype=np.float64)[..., i] / 255.0 for i in range(3))
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    cb = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    cr = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    return np.clip(np.round(np.stack([y, cb, cr], axis=-1)), 0, 255).astype(np.uint8)


def _draw(plane: np.ndarray, shape: _Shape, scale: float, value: int) -> None:
    """Paint `shape` with `value` on one image plane sampled at `scale` (1 luma, 0.5 chroma)."""
    h, w = plane.shape
    cx, cy, r = shape.pos[0] * scale, shape.pos[1] * scale, shape.radius * scale
    x0, x1 = max(0, int(cx - r)), min(w, int(np.ceil(cx + r)) + 1)
    y0, y1 = max(0, int(cy - r)), min(h, int(np.ceil(cy + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    if shape.kind == "circle":
        dy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - cy
        dx = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - cx
        plane[y0:y1, x0:x1][dx * dx + dy * dy <= r * r] = value
    else:
        plane[y0:y1, x0:x1] = value


def _render_frame(width: int, height: int, background: np.ndarray, shapes: list[_Shape]
                  ) -> np.ndarray:
    """One yuv420p frame as PyAV wants it: the Y, U and V planes stacked into (h * 3/2, w).
    Drawn straight in YUV so that no per-frame colour conversion is needed."""
    buf = np.empty(width * height * 3 // 2, dtype=np.uint8)
    n_y, n_c = width * height, width * height // 4
    planes = (buf[:n_y].reshape(height, width),
              buf[n_y:n_y + n_c].reshape(height // 2, width // 2),
              buf[n_y + n_c:].reshape(height // 2, width // 2))
    for k, plane in enumerate(planes):
        plane[:] = background[k]
        for shape in shapes:
            _draw(plane, shape, 1.0 if k == 0 else 0.5, int(shape.yuv[k]))
    return buf.reshape(height * 3 // 2, width)


def _step(shape: _Shape, dt: float, width: int, height: int) -> None:
    """Move a shape by `dt` seconds of its velocity, bouncing off the frame's edges."""
    shape.pos = shape.pos + shape.vel * dt
    for axis, limit in ((0, width), (1, height)):
        lo, hi = shape.radius, limit - shape.radius
        if shape.pos[axis] < lo:
            shape.pos[axis], shape.vel[axis] = 2 * lo - shape.pos[axis], abs(shape.vel[axis])
        elif shape.pos[axis] > hi:
            shape.pos[axis], shape.vel[axis] = 2 * hi - shape.pos[axis], -abs(shape.vel[axis])


def make_demo_video(path: str | os.PathLike[str], seconds: float = 20.0,
                    size: tuple[int, int] = (640, 360), fps: int = 30, seed: int = 0,
                    crf: int = 23, progress: bool = False) -> DemoVideo:
    """Write a procedural H.264 MP4 of `seconds` at `size` (width, height) and `fps`.

    Three scenes separated by two hard cuts (at 1/3 and 2/3 of the length), each with its own
    background colour and set of bouncing circles and boxes; all shapes speed up and slow down
    together following `speed_curve`. Returns the ground truth with the path.
    """
    width, height = size
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise VbgmError(f"{path}: demo video size must be even and at least 16x16, got {size}")
    if seconds <= 0 or fps <= 0:
        raise VbgmError(f"{path}: demo video needs seconds > 0 and fps > 0")
    rng = np.random.default_rng(seed)
    n_frames = max(3, round(seconds * fps))
    cut_frames = (n_frames // 3, 2 * n_frames // 3)
    speed = speed_curve(n_frames, fps)
    order = rng.permutation(len(BACKGROUNDS))[:3]
    backgrounds = [np.array(BACKGROUNDS[i], dtype=np.uint8) for i in order]

    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        stream.codec_context.colorspace = 6  # tag the pixels as BT.601 (AVCOL_SPC_SMPTE170M)
        scene, shapes = -1, []
        bar = stage("demo video", n_frames, "frame", enabled=progress)
        for i in range(n_frames):
            new_scene = sum(i >= c for c in cut_frames)
            if new_scene != scene:
                scene = new_scene
                shapes = _scene_shapes(rng, width, height, backgrounds[scene])
            else:
                for shape in shapes:
                    _step(shape, speed[i] / fps, width, height)
            image = _render_frame(width, height, rgb_to_yuv(backgrounds[scene]), shapes)
            frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
            bar.update(1)
        out.mux(stream.encode(None))
        bar.close()
    return DemoVideo(path=Path(path), fps=fps, size=(width, height), n_frames=n_frames,
                     cuts=tuple(c / fps for c in cut_frames), speed=speed)
