"""AP-10K annotations as COCO keypoint JSON: typed records, loading with clear errors, saving.

The official files are COCO keypoint JSON with two additions: images carry `background` (1–8) and
categories are species (`name`) grouped into families (`supercategory`). `CocoDataset.load` reads
such a file (or any COCO keypoint file, e.g. Animal-Pose's 20-keypoint one) into plain dataclasses
with keypoints as `(K, 3)` float arrays of (x, y, visibility); every schema problem raises
`AP10KError` naming the file, the record and what is wrong. Fields this module does not model
(`license`, `segmentation`, ...) are kept in `extra` and written back on save.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ap10k import taxonomy
from ap10k.atomic import write_text_atomic
from ap10k.errors import AP10KError


@dataclass
class ImageInfo:
    """One `images[]` record. `background` is AP-10K's scene type 1–8 (None when absent)."""

    id: int
    file_name: str
    width: int
    height: int
    background: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Instance:
    """One `annotations[]` record: an animal with its species, box and keypoints.

    `bbox` is (x, y, w, h) in pixels; `area` is the box area w·h in AP-10K (it sets the OKS scale);
    `keypoints` is a `(K, 3)` float array of (x, y, v) with v = 0 unlabelled, 1 labelled but
    occluded, 2 visible (AP-10K uses 0 and 2).
    """

    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    area: float
    iscrowd: int
    num_keypoints: int
    keypoints: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_keypoints(cls, id: int, image_id: int, category_id: int, keypoints: np.ndarray,
                       bbox: tuple[float, float, float, float] | None = None) -> Instance:
        """An instance with `num_keypoints` and `area` (= w·h) derived; the box defaults to the
        tight box around the labelled keypoints."""
        kps = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
        labelled = kps[:, 2] > 0
        if bbox is None:
            if labelled.any():
                x0, y0 = kps[labelled, :2].min(axis=0)
                x1, y1 = kps[labelled, :2].max(axis=0)
                bbox = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            else:
                bbox = (0.0, 0.0, 0.0, 0.0)
        bbox = tuple(float(v) for v in bbox)  # type: ignore[assignment]
        return cls(id=id, image_id=image_id, category_id=category_id, bbox=bbox,
                   area=bbox[2] * bbox[3], iscrowd=0, num_keypoints=int(labelled.sum()),
                   keypoints=kps)

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of keypoints with v > 0."""
        return self.keypoints[:, 2] > 0


@dataclass
class Category:
    """One `categories[]` record; in AP-10K a species (`name`) of a family (`supercategory`).

    `skeleton` is kept 1-based as stored in the file (use `keypoints.SKELETON` for 0-based).
    """

    id: int
    name: str
    supercategory: str
    keypoints: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def ap10k_categories() -> list[Category]:
    """The 54 AP-10K species categories from the taxonomy (what the official files hold)."""
    return [_parse_category(c, "taxonomy") for c in taxonomy.coco_categories()]


@dataclass
class CocoDataset:
    """A COCO keypoint annotation file in memory. `source` names it in error messages."""

    images: list[ImageInfo]
    annotations: list[Instance]
    categories: list[Category] = field(default_factory=ap10k_categories)
    info: dict[str, Any] = field(default_factory=dict)
    licenses: list[Any] = field(default_factory=list)
    source: str = "<memory>"

    # ---------------------------------------------------------------- I/O
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CocoDataset:
        """Read and validate a COCO keypoint JSON file; AP10KError naming the problem otherwise."""
        return cls.from_dict(read_json(path), source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<memory>",
                  problems: list[tuple[str, str]] | None = None) -> CocoDataset:
        """Build a dataset from parsed JSON.

        With `problems=None` the first schema violation raises AP10KError. With a list, each bad
        record is skipped and `(where, what)` appended instead, so a checker can report them all.
        """
        return _parse_dataset(data, source, problems)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object in the official key order."""
        return {
            "info": self.info,
            "licenses": self.licenses,
            "images": [_image_json(im) for im in self.images],
            "annotations": [_instance_json(a) for a in self.annotations],
            "categories": [_category_json(c) for c in self.categories],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the dataset as JSON atomically (deterministic bytes for equal content)."""
        write_text_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False) + "\n")

    # ---------------------------------------------------------------- lookups
    def image_index(self) -> dict[int, ImageInfo]:
        """Images by id."""
        return {im.id: im for im in self.images}

    def category_index(self) -> dict[int, Category]:
        """Categories by id."""
        return {c.id: c for c in self.categories}

    def instances_by_image(self) -> dict[int, list[Instance]]:
        """Instances grouped by image id (every image present, possibly with an empty list)."""
        out: dict[int, list[Instance]] = {im.id: [] for im in self.images}
        for a in self.annotations:
            out.setdefault(a.image_id, []).append(a)
        return out

    def image_species(self) -> dict[int, int]:
        """The species of each image that has instances: its most frequent category id, the
        smallest id on ties (AP-10K images almost always hold one species)."""
        out: dict[int, int] = {}
        for image_id, anns in self.instances_by_image().items():
            if anns:
                ids = [a.category_id for a in anns]
                out[image_id] = min(set(ids), key=lambda c: (-ids.count(c), c))
        return out

    def species_counts(self) -> dict[int, int]:
        """Number of instances per category id (only ids that occur)."""
        counts: dict[int, int] = {}
        for a in self.annotations:
            counts[a.category_id] = counts.get(a.category_id, 0) + 1
        return dict(sorted(counts.items()))

    # ---------------------------------------------------------------- subsets
    def subset(self, image_ids: Iterable[int]) -> CocoDataset:
        """The images with these ids (in this dataset's order) and all their instances."""
        keep = set(image_ids)
        return replace(self, images=[im for im in self.images if im.id in keep],
                       annotations=[a for a in self.annotations if a.image_id in keep])

    def without_images(self, image_ids: Iterable[int]) -> CocoDataset:
        """This dataset minus the images with these ids (and their instances)."""
        drop = set(image_ids)
        return self.subset(im.id for im in self.images if im.id not in drop)

    def filter_species(self, species_ids: Iterable[int]) -> CocoDataset:
        """Only instances of these category ids, and only images holding at least one of them."""
        keep = set(species_ids)
        anns = [a for a in self.annotations if a.category_id in keep]
        with_anns = {a.image_id for a in anns}
        return replace(self, images=[im for im in self.images if im.id in with_anns],
                       annotations=anns)

    def filter_family(self, family: str) -> CocoDataset:
        """Only instances (and images) of the species of one AP-10K family."""
        return self.filter_species(taxonomy.species_of_family(family))


def image_folder_candidates(json_path: str | os.PathLike[str]) -> list[Path]:
    """Where image files of an annotation file usually are: next to it, in `data/` beside it, or
    in `../data` (the official `annotations/` + `data/` layout)."""
    here = Path(json_path).resolve().parent
    return [here, here / "data", here.parent / "data"]


def find_image_folder(file_names: Iterable[str], json_path: str | os.PathLike[str]
                      ) -> Path | None:
    """The first candidate folder holding at least one of `file_names`, else None."""
    names = list(file_names)
    for folder in image_folder_candidates(json_path):
        if any((folder / n).is_file() for n in names):
            return folder
    return None


# -------------------------------------------------------------------- reading
def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; AP10KError with the file name for a missing, unreadable or bad file."""
    p = Path(path)
    if not p.exists():
        raise AP10KError(f"{p}: no such file")
    if p.is_dir():
        raise AP10KError(f"{p}: is a directory, expected a JSON file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AP10KError(f"{p}: not a UTF-8 text file (expected COCO JSON)") from None
    except OSError as exc:
        raise AP10KError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AP10KError(
            f"{p}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


class _Bad(Exception):
    """A schema violation inside one record (caught and turned into AP10KError or a problem)."""


def _int(rec: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in rec:
        if default is not None:
            return default
        raise _Bad(f"missing '{key}'")
    v = rec[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v != int(v):
        raise _Bad(f"'{key}' must be an integer, got {v!r}")
    return int(v)


def _num(rec: dict[str, Any], key: str) -> float:
    if key not in rec:
        raise _Bad(f"missing '{key}'")
    v = rec[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _Bad(f"'{key}' must be a finite number, got {v!r}")
    return float(v)


def _str(rec: dict[str, Any], key: str, default: str | None = None) -> str:
    if key not in rec:
        if default is not None:
            return default
        raise _Bad(f"missing '{key}'")
    v = rec[key]
    if not isinstance(v, str):
        raise _Bad(f"'{key}' must be a string, got {v!r}")
    return v


def _numbers(rec: dict[str, Any], key: str) -> list[float]:
    if key not in rec:
        raise _Bad(f"missing '{key}'")
    v = rec[key]
    if not isinstance(v, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v
    ):
        raise _Bad(f"'{key}' must be a list of finite numbers")
    return [float(x) for x in v]


def _record(rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise _Bad(f"expected an object, got {type(rec).__name__}")
    return rec


def _parse_image(rec: Any, where: str) -> ImageInfo:
    rec = _record(rec)
    width, height = _int(rec, "width"), _int(rec, "height")
    if width <= 0 or height <= 0:
        raise _Bad(f"image size must be positive, got {width}x{height}")
    background = _int(rec, "background") if rec.get("background") is not None else None
    known = {"id", "file_name", "width", "height", "background"}
    return ImageInfo(id=_int(rec, "id"), file_name=_str(rec, "file_name"), width=width,
                     height=height, background=background,
                     extra={k: v for k, v in rec.items() if k not in known})


def _parse_instance(rec: Any, where: str) -> Instance:
    rec = _record(rec)
    bbox = _numbers(rec, "bbox")
    if len(bbox) != 4:
        raise _Bad(f"'bbox' must have 4 numbers [x, y, w, h], got {len(bbox)}")
    flat = _numbers(rec, "keypoints")
    if len(flat) % 3:
        raise _Bad(f"'keypoints' length {len(flat)} is not a multiple of 3")
    kps = np.array(flat, dtype=np.float64).reshape(-1, 3)
    iscrowd = _int(rec, "iscrowd", 0)
    if iscrowd not in (0, 1):
        raise _Bad(f"'iscrowd' must be 0 or 1, got {iscrowd}")
    num_keypoints = _int(rec, "num_keypoints", int((kps[:, 2] > 0).sum()))
    area = _num(rec, "area") if "area" in rec else bbox[2] * bbox[3]
    known = {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "num_keypoints",
             "keypoints"}
    return Instance(id=_int(rec, "id"), image_id=_int(rec, "image_id"),
                    category_id=_int(rec, "category_id"), bbox=tuple(bbox),  # type: ignore[arg-type]
                    area=area, iscrowd=iscrowd, num_keypoints=num_keypoints, keypoints=kps,
                    extra={k: v for k, v in rec.items() if k not in known})


def _parse_category(rec: Any, where: str) -> Category:
    rec = _record(rec)
    names = rec.get("keypoints", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _Bad("'keypoints' must be a list of keypoint names")
    skeleton = rec.get("skeleton", [])
    if not isinstance(skeleton, list) or not all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(i, int) for i in e)
        for e in skeleton
    ):
        raise _Bad("'skeleton' must be a list of [a, b] index pairs")
    known = {"id", "name", "supercategory", "keypoints", "skeleton"}
    return Category(id=_int(rec, "id"), name=_str(rec, "name"),
                    supercategory=_str(rec, "supercategory", ""), keypoints=tuple(names),
                    skeleton=tuple((a, b) for a, b in skeleton),
                    extra={k: v for k, v in rec.items() if k not in known})


def _parse_dataset(data: Any, source: str,
                   problems: list[tuple[str, str]] | None) -> CocoDataset:
    if not isinstance(data, dict):
        raise AP10KError(f"{source}: expected a COCO JSON object with images, annotations and "
                         f"categories, got a {type(data).__name__}")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise AP10KError(f"{source}: not a COCO keypoint file, missing {', '.join(missing)}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise AP10KError(f"{source}: '{key}' must be a list")

    def parse_all(key: str, parse: Any) -> list[Any]:
        out = []
        for i, rec in enumerate(data[key]):
            rid = rec.get("id") if isinstance(rec, dict) else None
            where = f"{key}[{i}]" + (f" (id {rid})" if rid is not None else "")
            try:
                out.append(parse(rec, where))
            except _Bad as exc:
                if problems is None:
                    raise AP10KError(f"{source}: {where}: {exc}") from None
                problems.append((where, str(exc)))
        return out

    categories = parse_all("categories", _parse_category)
    images = parse_all("images", _parse_image)
    annotations = parse_all("annotations", _parse_instance)

    # Cross-record: each instance's keypoint count must match its category's keypoint names.
    n_names = {c.id: len(c.keypoints) for c in categories if c.keypoints}
    kept = []
    for a in annotations:
        want = n_names.get(a.category_id)
        if want is not None and len(a.keypoints) != want:
            msg = (f"has {len(a.keypoints)} keypoints but category {a.category_id} names {want}")
            where = f"annotations (id {a.id})"
            if problems is None:
                raise AP10KError(f"{source}: {where}: {msg}")
            problems.append((where, msg))
            continue
        kept.append(a)
    info = data.get("info", {})
    licenses = data.get("licenses", [])
    return CocoDataset(images=images, annotations=kept, categories=categories,
                       info=info if isinstance(info, dict) else {},
                       licenses=licenses if isinstance(licenses, list) else [], source=source)


# -------------------------------------------------------------------- writing
def _num_json(v: float) -> int | float:
    """Integral floats as ints (the official files hold ints), others unchanged."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _image_json(im: ImageInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "license" in im.extra:
        out["license"] = im.extra["license"]
    out.update(id=im.id, file_name=im.file_name, width=im.width, height=im.height)
    if im.background is not None:
        out["background"] = im.background
    out.update({k: v for k, v in im.extra.items() if k != "license"})
    return out


def _instance_json(a: Instance) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": a.id, "image_id": a.image_id, "category_id": a.category_id,
        "bbox": [_num_json(v) for v in a.bbox], "area": _num_json(a.area),
        "iscrowd": a.iscrowd, "num_keypoints": a.num_keypoints,
        "keypoints": [_num_json(v) for v in np.asarray(a.keypoints).reshape(-1)],
    }
    out.update(a.extra)
    return out


def _category_json(c: Category) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id, "name": c.name, "supercategory": c.supercategory,
        "keypoints": list(c.keypoints), "skeleton": [list(e) for e in c.skeleton],
    }
    out.update(c.extra)
    return out
