"""Schema and quality checks of an AP-10K annotation file, reported rule by rule with record ids.

The paper (§3.3) automated two rules, "no keypoint outside its instance's box" and "no duplicate
keypoint names in one instance", before three rounds of human review. This module checks those and
the consistency that evaluation and training silently depend on. Tolerances, and why:

- keypoint_outside_box / box_outside_image: 1 px slack (`PIXEL_TOLERANCE`). The official boxes and
  keypoints are integer pixels, and a click on the box edge may round either way; anything beyond
  one pixel is a real annotation mistake.
- area_mismatch: AP-10K's `area` is the box's w·h (it is the OKS scale, so a wrong area changes
  every score of that animal). Allowed difference: 1 % of w·h (`AREA_TOLERANCE`), at least 1 px²,
  which admits float rounding of non-integer boxes and nothing else.
- duplicate_keypoint_position: a COCO keypoint array cannot repeat a name, so a "duplicate name in
  one instance" shows up as two different keypoints clicked at the very same pixel. It is an
  error, as in the paper's automatic check; a limb pointing at the camera can legitimately stack
  two points, so `severities={"duplicate_keypoint_position": "warning"}` (the check command's
  `--duplicate-keypoints warning`) lowers it for data where that is expected.

Image files are looked for in `--images DIR` when given; otherwise next to the JSON, in `data/`
beside it, or in `../data` (the official `annotations/` + `data/` layout). Without --images, when
none of the files is found in any of those folders, the file rule is skipped with a note rather
than flagging every image.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ap10k import keypoints as kp
from ap10k import taxonomy
from ap10k.dataset import CocoDataset, find_image_folder, image_folder_candidates, read_json
from ap10k.errors import AP10KError

PIXEL_TOLERANCE = 1.0
AREA_TOLERANCE = 0.01

ERROR, WARNING = "error", "warning"

# rule → (severity, what it means)
RULES: dict[str, tuple[str, str]] = {
    "schema": (ERROR, "record does not follow the COCO keypoint schema"),
    "duplicate_id": (ERROR, "id used by more than one record of the same kind"),
    "unknown_image": (ERROR, "annotation refers to an image id that images[] lacks"),
    "unknown_category": (ERROR, "category id not in categories[], or not an AP-10K species "
                                "(id, name and family must match the taxonomy)"),
    "duplicate_keypoint_names": (ERROR, "a category lists the same keypoint name twice"),
    "keypoint_names": (ERROR, "a category's keypoint names or skeleton differ from AP-10K's"),
    "invalid_visibility": (ERROR, "keypoint visibility is not 0, 1 or 2"),
    "keypoint_outside_box": (ERROR, "a labelled keypoint lies outside its instance's box"),
    "empty_box": (ERROR, "box width or height is not positive"),
    "box_outside_image": (ERROR, "box extends beyond the image"),
    "num_keypoints_mismatch": (ERROR, "num_keypoints differs from the number of labelled "
                                      "keypoints (v > 0)"),
    "area_mismatch": (ERROR, "area differs from the box's w·h by more than 1 %"),
    "invalid_background": (ERROR, "background is not one of the types 1-8"),
    "missing_image_file": (ERROR, "image file not found"),
    "unreadable_image": (ERROR, "image file cannot be decoded"),
    "image_size_mismatch": (ERROR, "image file's pixel size differs from width/height"),
    "duplicate_keypoint_position": (ERROR, "two labelled keypoints of one instance at the same "
                                           "pixel (a point annotated twice?)"),
    "no_keypoints": (WARNING, "instance has no labelled keypoint (evaluation ignores it)"),
    "missing_background": (WARNING, "image lacks AP-10K's background field"),
}


@dataclass
class Issue:
    """One finding: the rule it breaks, the record (`image 4`, `annotation 9284`) and details."""

    rule: str
    where: str
    detail: str = ""

    @property
    def severity(self) -> str:
        return RULES[self.rule][0]


@dataclass
class CheckReport:
    """All findings for one file, plus counts and notes on what could not be checked."""

    source: str
    num_images: int = 0
    num_annotations: int = 0
    num_categories: int = 0
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    severities: dict[str, str] = field(default_factory=dict)  # rule -> severity overrides

    def severity_of(self, rule: str) -> str:
        """The rule's severity in this report (its RULES default unless overridden)."""
        return self.severities.get(rule, RULES[rule][0])

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if self.severity_of(i.rule) == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if self.severity_of(i.rule) == WARNING]

    @property
    def ok(self) -> bool:
        """True when no error-level issue was found (warnings allowed)."""
        return not self.errors

    def by_rule(self) -> dict[str, list[Issue]]:
        """Issues grouped by rule, in RULES order."""
        groups: dict[str, list[Issue]] = {}
        for rule in RULES:
            found = [i for i in self.issues if i.rule == rule]
            if found:
                groups[rule] = found
        return groups

    def format(self, max_per_rule: int = 10) -> str:
        """The report as text: a header, then one block per rule, then a summary line."""
        lines = [f"{self.source}: {self.num_images} images, {self.num_annotations} instances, "
                 f"{self.num_categories} categories"]
        lines += [f"note: {n}" for n in self.notes]
        for rule, issues in self.by_rule().items():
            severity, meaning = self.severity_of(rule), RULES[rule][1]
            lines.append(f"{severity.upper():7s} {rule} ({len(issues)}): {meaning}")
            shown = issues if max_per_rule <= 0 else issues[:max_per_rule]
            for i in shown:
                lines.append(f"          {i.where}" + (f": {i.detail}" if i.detail else ""))
            if len(shown) < len(issues):
                lines.append(f"          ... and {len(issues) - len(shown)} more "
                             f"(--max 0 lists all)")
        n_e, n_w = len(self.errors), len(self.warnings)
        lines.append("no problems found" if not self.issues
                     else f"{n_e} error(s), {n_w} warning(s)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly report."""
        return {
            "source": self.source, "ok": self.ok, "num_images": self.num_images,
            "num_annotations": self.num_annotations, "num_categories": self.num_categories,
            "notes": self.notes,
            "rules": {rule: {"severity": self.severity_of(rule), "count": len(issues),
                             "issues": [{"where": i.where, "detail": i.detail} for i in issues]}
                      for rule, issues in self.by_rule().items()},
        }


def check_file(path: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None,
               severities: dict[str, str] | None = None) -> CheckReport:
    """Check one annotation file. A file that is not JSON, or not a COCO keypoint object at all,
    raises AP10KError; everything else is reported as issues. `severities` overrides rules'
    default severity (e.g. a duplicate keypoint position as a warning)."""
    for rule, level in (severities or {}).items():
        if rule not in RULES or level not in (ERROR, WARNING):
            raise AP10KError(f"severity {rule}={level}: unknown rule or level "
                             f"(levels: {ERROR}, {WARNING})")
    path = Path(path)
    data = read_json(path)
    if images_dir is not None:
        folder: Path | None = Path(images_dir)
        notes: list[str] = []
    else:
        folder, notes = _find_image_folder(data, path)
    report = check_data(data, str(path), folder)
    report.notes = notes + report.notes
    report.severities = dict(severities or {})
    return report


def _find_image_folder(data: Any, path: Path) -> tuple[Path | None, list[str]]:
    names = [im.get("file_name") for im in data.get("images", []) if isinstance(im, dict)]
    names = [n for n in names if isinstance(n, str)]
    folder = find_image_folder(names, path)
    if folder is not None:
        return folder, [f"image files looked up in {folder}"]
    if not names:
        return None, []
    return None, ["image files not checked: none found in "
                  + ", ".join(map(str, image_folder_candidates(path))) + " (pass --images DIR)"]


def check_data(data: Any, source: str, images_dir: Path | None = None) -> CheckReport:
    """Check parsed JSON. `images_dir` (when given) is where the image files must be."""
    problems: list[tuple[str, str]] = []
    ds = CocoDataset.from_dict(data, source=source, problems=problems)
    report = CheckReport(source, len(data["images"]), len(data["annotations"]),
                         len(data["categories"]))
    add = report.issues.append
    for where, what in problems:
        add(Issue("schema", where, what))

    for kind, ids in (("image", [im.id for im in ds.images]),
                      ("annotation", [a.id for a in ds.annotations]),
                      ("category", [c.id for c in ds.categories])):
        for i, n in sorted(Counter(ids).items()):
            if n > 1:
                add(Issue("duplicate_id", f"{kind} {i}", f"used {n} times"))

    _check_categories(ds, add)
    images = ds.image_index()
    categories = ds.category_index()
    for im in ds.images:
        if im.background is None:
            add(Issue("missing_background", f"image {im.id}"))
        elif im.background not in taxonomy.BACKGROUNDS:
            add(Issue("invalid_background", f"image {im.id}", f"background {im.background}"))
    for a in ds.annotations:
        where = f"annotation {a.id}"
        if a.image_id not in images:
            add(Issue("unknown_image", where, f"image_id {a.image_id}"))
        if a.category_id not in categories:
            add(Issue("unknown_category", where, f"category_id {a.category_id}"))
        _check_instance(a, images.get(a.image_id), add)
    if images_dir is not None:
        _check_files(ds, images_dir, add)
    return report


def _check_categories(ds: CocoDataset, add: Any) -> None:
    for c in ds.categories:
        where = f"category {c.id}"
        dupes = sorted(n for n, k in Counter(c.keypoints).items() if k > 1)
        if dupes:
            add(Issue("duplicate_keypoint_names", where, ", ".join(dupes)))
        elif c.keypoints != kp.NAMES:
            add(Issue("keypoint_names", where, "keypoint names are not AP-10K's 17 in order"))
        elif c.skeleton and set(c.skeleton) != set(kp.SKELETON_1BASED):
            add(Issue("keypoint_names", where, "skeleton differs from AP-10K's"))
        if not taxonomy.is_species(c.id):
            add(Issue("unknown_category", where, f"{c.name!r} is not an AP-10K species id"))
        else:
            s = taxonomy.species(c.id)
            if (c.name, c.supercategory) != (s.name, s.family):
                add(Issue("unknown_category", where,
                          f"{c.name!r}/{c.supercategory!r}, AP-10K has {s.name!r}/{s.family!r}"))


def _check_instance(a: Any, image: Any, add: Any) -> None:
    where = f"annotation {a.id}"
    kps = a.keypoints
    names = kp.NAMES if len(kps) == kp.NUM_KEYPOINTS else [str(i) for i in range(len(kps))]
    vis = kps[:, 2]
    bad_v = [names[i] for i in np.flatnonzero(~np.isin(vis, (0, 1, 2)))]
    if bad_v:
        add(Issue("invalid_visibility", where,
                  ", ".join(f"{n}={vis[names.index(n)]:g}" for n in bad_v)))
    labelled = vis > 0
    n_labelled = int(labelled.sum())
    if a.num_keypoints != n_labelled:
        add(Issue("num_keypoints_mismatch", where,
                  f"num_keypoints {a.num_keypoints}, labelled {n_labelled}"))
    if n_labelled == 0:
        add(Issue("no_keypoints", where))
    x, y, w, h = a.bbox
    if w <= 0 or h <= 0:
        add(Issue("empty_box", where, f"bbox {_fmt(a.bbox)}"))
    else:
        tol = PIXEL_TOLERANCE
        out = [i for i in np.flatnonzero(labelled)
               if not (x - tol <= kps[i, 0] <= x + w + tol and y - tol <= kps[i, 1] <= y + h + tol)]
        if out:
            add(Issue("keypoint_outside_box", where,
                      ", ".join(f"{names[i]} ({kps[i, 0]:g}, {kps[i, 1]:g})" for i in out)
                      + f" outside bbox {_fmt(a.bbox)}"))
        if abs(a.area - w * h) > max(AREA_TOLERANCE * w * h, 1.0):
            add(Issue("area_mismatch", where, f"area {a.area:g}, box w·h {w * h:g}"))
        if image is not None and (x < -tol or y < -tol or x + w > image.width + tol
                                  or y + h > image.height + tol):
            add(Issue("box_outside_image", where,
                      f"bbox {_fmt(a.bbox)} in a {image.width}x{image.height} image"))
    pts = [(float(kps[i, 0]), float(kps[i, 1])) for i in np.flatnonzero(labelled)]
    idx = list(np.flatnonzero(labelled))
    seen: dict[tuple[float, float], int] = {}
    for i, p in zip(idx, pts):
        if p in seen:
            add(Issue("duplicate_keypoint_position", where,
                      f"{names[seen[p]]} and {names[i]} both at ({p[0]:g}, {p[1]:g})"))
        else:
            seen[p] = i


def _check_files(ds: CocoDataset, folder: Path, add: Any) -> None:
    from PIL import Image, UnidentifiedImageError

    for im in ds.images:
        path = folder / im.file_name
        where = f"image {im.id}"
        if not path.is_file():
            add(Issue("missing_image_file", where, str(path)))
            continue
        try:
            with Image.open(path) as f:
                size = f.size
        except (UnidentifiedImageError, OSError) as exc:
            add(Issue("unreadable_image", where, f"{path}: {exc}"))
            continue
        if size != (im.width, im.height):
            add(Issue("image_size_mismatch", where,
                      f"{im.file_name} is {size[0]}x{size[1]}, record says "
                      f"{im.width}x{im.height}"))


def _fmt(bbox: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in bbox) + "]"
