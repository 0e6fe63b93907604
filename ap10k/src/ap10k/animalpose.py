"""Animal-Pose (20 keypoints, 5 species) ↔ AP-10K (17 keypoints) conversion on shared keypoints.

Mapping (AP-10K ← Animal-Pose), with the reason in the last column:

| AP-10K            | Animal-Pose | why                                                      |
|-------------------|-------------|----------------------------------------------------------|
| left/right_eye    | L/R_Eye     | same point                                               |
| nose              | Nose        | same point                                               |
| neck              | —           | (a)                                                      |
| root_of_tail      | TailBase    | same point                                               |
| l/r_shoulder      | L/R_F_Elbow | (b) where the foreleg leaves the body: anatomical elbow  |
| l/r_elbow         | L/R_F_Knee  | (b) the carpus, which Animal-Pose calls the front "knee" |
| l/r_front_paw     | L/R_F_Paw   | same point                                               |
| l/r_hip           | L/R_B_Elbow | (b) the stifle (anatomical knee): Animal-Pose back elbow |
| l/r_knee          | L/R_B_Knee  | (b) the hock (ankle): Animal-Pose back "knee"            |
| l/r_back_paw      | L/R_B_Paw   | same point                                               |
| —                 | L/R_EarBase, Throat, Withers | no AP-10K counterpart                   |

(a) AP-10K's neck is the base of the neck on the body midline; Animal-Pose's Throat (under the
jaw) and Withers (top of the shoulder blades) are both a head-length away, so it is unmatched.
(b) AP-10K labels digitigrade and unguligrade legs one joint down from the names ("hip" = stifle,
"knee" = hock; the front leg likewise, which the real sample's point heights confirm), exactly the
joints Animal-Pose names elbow/knee on each leg.

So 16 keypoints are shared; unmatched ones become v = 0 (missing) in the target skeleton. All five
Animal-Pose species (dog, cat, cow, horse, sheep) are digitigrade or unguligrade, so AP-10K's
shifted-joint convention applies to every animal converted. Going AP-10K → Animal-Pose keeps only
instances of those five species (exact species: AP-10K's "argali sheep" is not Animal-Pose's
"sheep"), which also keeps out plantigrade animals whose AP-10K hips and knees are anatomical.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import PurePath

import numpy as np

from ap10k import keypoints as kp
from ap10k import taxonomy
from ap10k.dataset import Category, CocoDataset, Instance, ap10k_categories
from ap10k.errors import AP10KError

NAMES: tuple[str, ...] = (
    "L_Eye", "R_Eye", "L_EarBase", "R_EarBase", "Nose", "Throat", "TailBase", "Withers",
    "L_F_Elbow", "R_F_Elbow", "L_B_Elbow", "R_B_Elbow", "L_F_Knee", "R_F_Knee", "L_B_Knee",
    "R_B_Knee", "L_F_Paw", "R_F_Paw", "L_B_Paw", "R_B_Paw",
)
NUM_KEYPOINTS = len(NAMES)
# Animal-Pose skeleton (1-based, as its files store it).
SKELETON_1BASED: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 3), (2, 4), (1, 5), (2, 5), (5, 6), (6, 8), (7, 8), (6, 9), (9, 13), (13, 17),
    (6, 10), (10, 14), (14, 18), (7, 11), (11, 15), (15, 19), (7, 12), (12, 16), (16, 20),
)
# Animal-Pose category ids of the official release, and their AP-10K species.
CATEGORY_IDS: dict[str, int] = {"dog": 1, "cat": 2, "sheep": 3, "cow": 4, "horse": 5}
TO_AP10K_SPECIES: dict[str, int] = {
    name: taxonomy.species_by_name(name).id for name in CATEGORY_IDS
}
# Animal-Pose names its own images by species and number (ca110.jpeg, ho105.jpeg).
_FILE_SPECIES = re.compile(r"^(ca|do|co|ho|sh)\d+\.", re.IGNORECASE)
FILE_PREFIXES: dict[str, str] = {"ca": "cat", "do": "dog", "co": "cow", "ho": "horse",
                                 "sh": "sheep"}

# AP-10K keypoint name → Animal-Pose keypoint name (the table above).
_PAIRS: dict[str, str] = {
    "left_eye": "L_Eye", "right_eye": "R_Eye", "nose": "Nose", "root_of_tail": "TailBase",
    "left_shoulder": "L_F_Elbow", "left_elbow": "L_F_Knee", "left_front_paw": "L_F_Paw",
    "right_shoulder": "R_F_Elbow", "right_elbow": "R_F_Knee", "right_front_paw": "R_F_Paw",
    "left_hip": "L_B_Elbow", "left_knee": "L_B_Knee", "left_back_paw": "L_B_Paw",
    "right_hip": "R_B_Elbow", "right_knee": "R_B_Knee", "right_back_paw": "R_B_Paw",
}
# (AP-10K index, Animal-Pose index) of every shared keypoint.
SHARED: tuple[tuple[int, int], ...] = tuple(
    (kp.INDEX[a], NAMES.index(b)) for a, b in _PAIRS.items()
)


def to_ap10k_keypoints(k20: np.ndarray) -> np.ndarray:
    """`(20, 3)` Animal-Pose keypoints → `(17, 3)` AP-10K keypoints (unmatched: 0, 0, 0)."""
    k20 = np.asarray(k20, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    out = np.zeros((kp.NUM_KEYPOINTS, 3))
    for a, b in SHARED:
        out[a] = k20[b]
    return out


def to_animalpose_keypoints(k17: np.ndarray) -> np.ndarray:
    """`(17, 3)` AP-10K keypoints → `(20, 3)` Animal-Pose keypoints (unmatched: 0, 0, 0)."""
    k17 = np.asarray(k17, dtype=np.float64).reshape(kp.NUM_KEYPOINTS, 3)
    out = np.zeros((NUM_KEYPOINTS, 3))
    for a, b in SHARED:
        out[b] = k17[a]
    return out


def _convert(a: Instance, keypoints: np.ndarray, category_id: int) -> Instance:
    x, y, w, h = a.bbox
    return replace(a, category_id=category_id, keypoints=keypoints,
                   num_keypoints=int((keypoints[:, 2] > 0).sum()), area=w * h,
                   extra={k: v for k, v in a.extra.items() if k != "segmentation"})


def animalpose_categories() -> list[Category]:
    """The five Animal-Pose categories with their 20 keypoint names and skeleton."""
    return [Category(id=i, name=name, supercategory="animal", keypoints=NAMES,
                     skeleton=SKELETON_1BASED) for name, i in CATEGORY_IDS.items()]


def instance_species(ds: CocoDataset) -> dict[int, str]:
    """The Animal-Pose species name of each annotation id.

    A file whose categories name several of the five species (the official release: dog 1, cat 2,
    sheep 3, cow 4, horse 5, though files in the wild number them differently) gives each
    instance its category's species. A file with a single category says nothing about the
    species: mmpose's converted files label every animal category 1 'cat' (the real sample's
    horse included), so there the image's file name decides, as Animal-Pose names its own images
    by species (ca110.jpeg is a cat, ho105.jpeg a horse). An instance whose species cannot be told
    either way is an AP10KError naming it.
    """
    cats = ds.category_index()
    named = {c.name.lower() for c in ds.categories if c.name.lower() in TO_AP10K_SPECIES}
    images = ds.image_index()
    out: dict[int, str] = {}
    for a in ds.annotations:
        cat = cats.get(a.category_id)
        if cat is None or cat.name.lower() not in TO_AP10K_SPECIES:
            raise AP10KError(f"{ds.source}: annotation {a.id}: category {a.category_id} is not "
                             f"one of the Animal-Pose species {', '.join(CATEGORY_IDS)}")
        if len(named) > 1:
            out[a.id] = cat.name.lower()
            continue
        image = images.get(a.image_id)
        name = PurePath(image.file_name).name if image else ""
        match = _FILE_SPECIES.match(name)
        if match is None:
            raise AP10KError(
                f"{ds.source}: annotation {a.id}: cannot tell its species: the file has the single "
                f"category {cat.name!r} for every animal and image {name or a.image_id!r} is not "
                f"named by species (ca/do/co/ho/sh + number)")
        out[a.id] = FILE_PREFIXES[match.group(1).lower()]
    return out


def animalpose_to_ap10k(ds: CocoDataset) -> CocoDataset:
    """Convert an Animal-Pose dataset to the AP-10K skeleton and species ids.

    Species per instance as `instance_species` decides. `area` becomes the box's w·h as AP-10K
    defines it; segmentations are dropped.
    """
    bad = [c for c in ds.categories if c.keypoints and tuple(c.keypoints) != NAMES]
    if bad:
        raise AP10KError(f"{ds.source}: category {bad[0].id} does not have Animal-Pose's 20 "
                         f"keypoints in order (is this an Animal-Pose file?)")
    species = instance_species(ds)
    out = []
    for a in ds.annotations:
        if len(a.keypoints) != NUM_KEYPOINTS:
            raise AP10KError(f"{ds.source}: annotation {a.id} has {len(a.keypoints)} keypoints, "
                             f"expected {NUM_KEYPOINTS}")
        out.append(_convert(a, to_ap10k_keypoints(a.keypoints), TO_AP10K_SPECIES[species[a.id]]))
    return replace(ds, annotations=out, categories=ap10k_categories())


def ap10k_to_animalpose(ds: CocoDataset) -> tuple[CocoDataset, int]:
    """Convert AP-10K annotations to Animal-Pose's skeleton; only instances of the five shared
    species are kept. Returns the dataset and the number of instances dropped."""
    to_ap = {sid: CATEGORY_IDS[name] for name, sid in TO_AP10K_SPECIES.items()}
    out, dropped = [], 0
    for a in ds.annotations:
        if a.category_id not in to_ap:
            dropped += 1
            continue
        if len(a.keypoints) != kp.NUM_KEYPOINTS:
            raise AP10KError(f"{ds.source}: annotation {a.id} has {len(a.keypoints)} keypoints, "
                             f"expected {kp.NUM_KEYPOINTS}")
        out.append(_convert(a, to_animalpose_keypoints(a.keypoints), to_ap[a.category_id]))
    keep = {a.image_id for a in out}
    images = [im for im in ds.images if im.id in keep]
    return replace(ds, images=images, annotations=out, categories=animalpose_categories()), dropped
