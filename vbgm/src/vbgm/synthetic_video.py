"""Synthetic videos with known motion, for the tests and benchmarks of `vbgm.video`.

A scene is a periodic random texture seen through a window that pans across it: the camera
position x(t) (in frame heights, so the same scene can be rendered at any resolution) is the
known truth; direction reversals and stops are known impacts, texture switches are known cuts.
Frames are written with PyAV in any container/codec it can encode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction

import numpy as np


def periodic_texture(height: int, width: int, seed: int = 0, feature: float = 0.03) -> np.ndarray:
    """A (height, width) uint8 random texture that tiles seamlessly; blobs of about `feature`
    × height pixels, full contrast."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    sigma = feature * height
    gain = np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    tex = np.real(np.fft.ifft2(np.fft.fft2(noise) * gain))
    tex = (tex - tex.min()) / (np.ptp(tex) + 1e-12)
    return (tex * 255).astype(np.uint8)


def pan_frames(positions: Iterable[tuple[float, float]], height: int, width: int,
               textures: Callable[[int], np.ndarray] | None = None,
               shots: Iterable[int] | None = None) -> Iterator[np.ndarray]:
    """Render frames (height, width) uint8 of a window at (x, y) frame heights over a texture.

    positions: camera offsets per frame in frame heights (so motion scales with resolution).
    textures: shot number -> texture (any size; it tiles); default periodic_texture(seed=shot).
    shots: shot number per frame (a change is a hard cut); default all 0.
    """
    import cv2

    cache: dict[int, np.ndarray] = {}
    shots_it = iter(shots) if shots is not None else None
    for x, y in positions:
        shot = next(shots_it) if shots_it is not None else 0
        if shot not in cache:
            base = (textures(shot) if textures else
                    periodic_texture(720, 1280, seed=shot))
            scale = height / 360.0  # textures are defined for a 360-pixel-high frame
            size = (max(1, round(base.shape[1] * scale)), max(1, round(base.shape[0] * scale)))
            cache[shot] = cv2.resize(base, size, interpolation=cv2.INTER_AREA)
        tex = cache[shot]
        m = np.float32([[1, 0, -x * height], [0, 1, -y * height]])
        yield cv2.warpAffine(tex, m, (width, height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_WRAP)


def positions_from_velocity(velocity: Callable[[float], float], n_frames: int,
                            fps: float) -> list[tuple[float, float]]:
    """Horizontal camera positions (frame heights) for a velocity (frame heights/s) of time."""
    x, out = 0.0, []
    for i in range(n_frames):
        out.append((x, 0.0))
        x += velocity(i / fps) / fps
    return out


def write_video(path: str | os.PathLike[str], frames: Iterable[np.ndarray], fps: float = 30.0,
                codec: str = "libx264", pix_fmt: str = "yuv420p", rotation: int = 0,
                times: Iterable[float] | None = None, options: dict | None = None) -> None:
    """Encode grey (H, W) or RGB (H, W, 3) uint8 frames to `path` with PyAV.

    rotation: display-matrix rotation in degrees (counter-clockwise), as phones write.
    times: per-frame presentation times in seconds (variable frame rate); default i / fps.
    """
    import av

    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        times_it = iter(times) if times is not None else None
        first = True
        for img in frames:
            if first:
                stream.height, stream.width = img.shape[:2]
                if rotation:
                    stream.set_display_rotation(rotation)
                first = False
            fmt = "gray" if img.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
            if times_it is not None:
                frame.pts = round(next(times_it) * 1000)
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
