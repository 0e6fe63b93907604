"""Skeleton drawing: ground truth and predictions on images, left and right limbs in different
colours (orange = left, blue = right, green = midline), side by side or overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ap10k import keypoints as kp

SIDE_COLOURS: dict[str, tuple[int, int, int]] = {
    "left": (255, 140, 0), "right": (30, 144, 255), "centre": (60, 210, 60),
}
BOX_COLOUR = (255, 255, 255)


@dataclass
class Pose:
    """One animal to draw: `(K, 3)` keypoints (x, y, v or score), an optional box and label."""

    keypoints: np.ndarray
    bbox: tuple[float, float, float, float] | None = None
    label: str = ""


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def draw_poses(image: Image.Image, poses: Sequence[Pose], hollow: bool = False,
               threshold: float = 0.0,
               skeleton: Sequence[tuple[int, int]] = kp.SKELETON) -> Image.Image:
    """A copy of `image` with every pose drawn: limbs coloured by side, boxes, labels.

    Keypoints with third value <= `threshold` are not drawn (v = 0 for ground truth; use e.g. 0.2
    for prediction scores). `hollow` draws ring markers and thinner limbs (predictions overlaid on
    ground truth).
    """
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    scale = max(out.size) / 640
    width = max(1, round((2 if hollow else 3) * scale))
    radius = max(2, round(4 * scale))
    font_size = max(10, round(13 * scale))
    font = _font(font_size)
    for pose in poses:
        k = pose.keypoints
        shown = k[:, 2] > threshold
        if pose.bbox is not None:
            x, y, w, h = pose.bbox
            draw.rectangle([x, y, x + w, y + h], outline=BOX_COLOUR, width=max(1, width // 2))
        for a, b in skeleton:
            if a < len(k) and b < len(k) and shown[a] and shown[b]:
                colour = SIDE_COLOURS[kp.edge_side(a, b)] if len(k) == kp.NUM_KEYPOINTS \
                    else SIDE_COLOURS["centre"]
                draw.line([tuple(k[a, :2]), tuple(k[b, :2])], fill=colour, width=width)
        for i in np.flatnonzero(shown):
            colour = SIDE_COLOURS[kp.side(i)] if len(k) == kp.NUM_KEYPOINTS \
                else SIDE_COLOURS["centre"]
            x, y = k[i, :2]
            box = [x - radius, y - radius, x + radius, y + radius]
            if hollow:
                draw.ellipse(box, outline=colour, width=max(1, width))
            else:
                draw.ellipse(box, fill=colour, outline=(0, 0, 0))
        if pose.label:
            if pose.bbox is not None:
                ax, ay = pose.bbox[0], pose.bbox[1]
            elif shown.any():
                ax, ay = k[shown, :2].min(axis=0)
            else:
                ax, ay = 0.0, 0.0
            tx, ty = ax + 3, max(0.0, ay - font_size - 6)
            left, top, right, bottom = draw.textbbox((tx, ty), pose.label, font=font)
            draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill=(0, 0, 0))
            draw.text((tx, ty), pose.label, fill=(255, 255, 255), font=font)
    return out


def titled(image: Image.Image, title: str) -> Image.Image:
    """The image with a black title bar on top."""
    size = max(12, round(16 * max(image.size) / 640))
    font = _font(size)
    bar = size + 10
    out = Image.new("RGB", (image.width, image.height + bar), (0, 0, 0))
    out.paste(image, (0, bar))
    ImageDraw.Draw(out).text((6, 4), title, fill=(255, 255, 255), font=font)
    return out


def panel(image: Image.Image, gt: Sequence[Pose], pred: Sequence[Pose] | None = None,
          overlay: bool = False, title: str = "", pred_threshold: float = 0.0) -> Image.Image:
    """One image's figure: ground truth alone, or GT and predictions side by side / overlaid."""
    if pred is None:
        return titled(draw_poses(image, gt), f"{title}ground truth")
    if overlay:
        both = draw_poses(draw_poses(image, gt), pred, hollow=True, threshold=pred_threshold)
        return titled(both, f"{title}ground truth (filled) + prediction (rings)")
    left = titled(draw_poses(image, gt), f"{title}ground truth")
    right = titled(draw_poses(image, pred, threshold=pred_threshold), f"{title}prediction")
    return grid([left, right], columns=2, gap=8)


def grid(images: Sequence[Image.Image], columns: int = 2, gap: int = 8,
         cell_width: int | None = None) -> Image.Image:
    """Images tiled row by row; with `cell_width` each is resized to that width first."""
    if not images:
        raise ValueError("grid of no images")
    if cell_width is not None:
        images = [im.resize((cell_width, max(1, round(im.height * cell_width / im.width))))
                  for im in images]
    columns = max(1, min(columns, len(images)))
    rows = [images[i:i + columns] for i in range(0, len(images), columns)]
    col_w = [max(r[c].width for r in rows if c < len(r)) for c in range(columns)]
    row_h = [max(im.height for im in r) for r in rows]
    out = Image.new("RGB", (sum(col_w) + gap * (columns - 1), sum(row_h) + gap * (len(rows) - 1)),
                    (40, 40, 40))
    y = 0
    for r, h in zip(rows, row_h):
        x = 0
        for c, im in enumerate(r):
            out.paste(im, (x, y))
            x += col_w[c] + gap
        y += h + gap
    return out


def legend_strip(width: int) -> Image.Image:
    """A thin strip naming the colours (left / right / midline)."""
    font = _font(14)
    out = Image.new("RGB", (width, 24), (0, 0, 0))
    d = ImageDraw.Draw(out)
    x = 8
    for name, key in (("left limbs", "left"), ("right limbs", "right"), ("midline", "centre")):
        d.rectangle([x, 7, x + 18, 17], fill=SIDE_COLOURS[key])
        d.text((x + 24, 4), name, fill=(255, 255, 255), font=font)
        x += 130
    return out
