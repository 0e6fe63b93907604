"""Boxes for `ap10k predict`: from a COCO annotation file, a list of boxes, or whole images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ap10k.errors import AP10KError
from ap10k.keypoints import NUM_KEYPOINTS
from ap10k.pipeline import Sample
from ap10k.transforms import clamp_box


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as exc:
        raise AP10KError(f"{path}: cannot read the image ({exc})") from None


def read_boxes(boxes: str | os.PathLike[str] | None, images: list[Path],
               category_id: int = 1) -> list[Sample]:
    """Samples for `images`: one per box in `boxes`, or the whole image when `boxes` is None."""
    from ap10k.dataset import CocoDataset, read_json

    if boxes is None:
        out = []
        for i, p in enumerate(images):
            w, h = _size(p)
            out.append(Sample(p, i, i, category_id, np.array([0.0, 0.0, w, h]), float(w * h),
                              np.zeros((NUM_KEYPOINTS, 3))))
        return out
    data = read_json(boxes)
    by_name = {p.name: p for p in images}
    out = []
    if isinstance(data, dict):
        coco = CocoDataset.from_dict(data, source=str(boxes))
        files = {im.id: im for im in coco.images}
        for a in coco.annotations:
            info = files.get(a.image_id)
            if info is None or Path(info.file_name).name not in by_name:
                continue
            out.append(Sample(by_name[Path(info.file_name).name], info.id, a.id, a.category_id,
                              clamp_box(a.bbox, info.width, info.height), a.area,
                              np.zeros((len(a.keypoints), 3))))
    elif isinstance(data, list):
        ids = {p.name: i for i, p in enumerate(images)}
        for j, r in enumerate(data):
            name = Path(str(r.get("file_name", ""))).name if isinstance(r, dict) else ""
            bbox = r.get("bbox") if isinstance(r, dict) else None
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise AP10KError(f"{boxes}: entry {j} needs 'file_name' and 'bbox': [x, y, w, h]")
            if name not in by_name:
                continue
            w, h = _size(by_name[name])
            out.append(Sample(by_name[name], ids[name], j,
                              int(r.get("category_id", category_id)),
                              clamp_box(bbox, w, h), float(bbox[2] * bbox[3]),
                              np.zeros((NUM_KEYPOINTS, 3)), float(r.get("score", 1.0))))
    else:
        raise AP10KError(f"{boxes}: expected a COCO annotation object or a list of boxes")
    if not out:
        raise AP10KError(f"{boxes}: no box belongs to any of the given images "
                         f"(matched by file name)")
    return out
