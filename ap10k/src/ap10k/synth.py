"""A procedural stand-in for AP-10K: side views of four-legged animals with known keypoints.

Each image shows one animal drawn from simple shapes (ellipse body and head, tapered limb
segments, neck, tail, optional stripes or spots, horns, trunk) in a pose drawn at random (gait
phase of each leg, neck and tail angles, body tilt, facing left or right, head turned to the
viewer or not) over a textured background of one of AP-10K's eight background types. Ten species
from six families differ in proportions, colours and patterns.

The 17 keypoints follow AP-10K's definitions; a keypoint is labelled (v = 2) only when it can be
seen: the far eye, the far shoulder and hip (behind the body), points under a foreground occluder
and points outside the image get v = 0, as unlabelled points do in AP-10K. The animal's left side
faces the viewer when it faces right. Output is AP-10K's layout: `data/<12-digit id>.jpg` and
COCO keypoint JSON `annotations/synth-{train,val}.json` with the 54 AP-10K categories.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ap10k.atomic import atomic_path
from ap10k.dataset import CocoDataset, ImageInfo, Instance
from ap10k.keypoints import INDEX, NUM_KEYPOINTS


@dataclass(frozen=True)
class Build:
    """Body plan of a species, in units of body length."""

    category_id: int
    body_h: float  # body height / length
    leg: float  # leg length
    leg_w: float  # limb thickness
    neck: float
    neck_w: float
    head: float  # head length
    head_h: float
    tail: float
    tail_w: float
    colour: tuple[int, int, int]  # RGB
    pattern: str = "plain"  # plain | stripes | spots
    pattern_colour: tuple[int, int, int] = (20, 20, 20)
    extra: str = ""  # horns | trunk | ears


SPECIES: dict[str, Build] = {
    "cow": Build(5, 0.55, 0.55, 0.09, 0.22, 0.22, 0.30, 0.18, 0.45, 0.025, (235, 230, 220),
                 "spots", (30, 25, 25), "horns"),
    "antelope": Build(1, 0.42, 0.75, 0.05, 0.38, 0.11, 0.28, 0.13, 0.15, 0.03, (196, 140, 80),
                      "plain", extra="horns"),
    "dog": Build(8, 0.42, 0.55, 0.07, 0.25, 0.14, 0.30, 0.16, 0.45, 0.04, (140, 95, 55),
                 extra="ears"),
    "fox": Build(9, 0.38, 0.45, 0.055, 0.22, 0.13, 0.30, 0.15, 0.60, 0.10, (220, 110, 40),
                 extra="ears"),
    "cat": Build(24, 0.40, 0.48, 0.055, 0.18, 0.14, 0.22, 0.17, 0.75, 0.04, (120, 120, 125),
                 "stripes", (60, 60, 60), "ears"),
    "tiger": Build(32, 0.42, 0.52, 0.08, 0.20, 0.20, 0.28, 0.20, 0.70, 0.05, (235, 140, 40),
                   "stripes", (25, 20, 15), "ears"),
    "horse": Build(21, 0.45, 0.80, 0.07, 0.48, 0.16, 0.40, 0.15, 0.50, 0.07, (110, 70, 40)),
    "zebra": Build(22, 0.45, 0.72, 0.07, 0.42, 0.16, 0.36, 0.15, 0.40, 0.04, (240, 240, 235),
                   "stripes", (20, 20, 20)),
    "brown bear": Build(51, 0.62, 0.42, 0.14, 0.12, 0.30, 0.30, 0.24, 0.06, 0.05,
                        (100, 65, 35), extra="ears"),
    "elephant": Build(20, 0.66, 0.62, 0.16, 0.10, 0.34, 0.38, 0.34, 0.30, 0.03, (130, 130, 128),
                      extra="trunk"),
}

# Background type (AP-10K's `background` 1–8) → base RGB colour and texture contrast.
BACKGROUNDS: dict[int, tuple[tuple[int, int, int], float]] = {
    1: ((120, 160, 70), 40.0), 2: ((40, 90, 40), 55.0), 3: ((110, 95, 80), 45.0),
    4: ((225, 230, 240), 20.0), 5: ((150, 150, 155), 50.0), 6: ((70, 110, 110), 45.0),
    7: ((215, 190, 140), 30.0), 8: ((190, 190, 190), 8.0),
}


def _background(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, int]:
    kind = int(rng.integers(1, 9))
    base, contrast = BACKGROUNDS[kind]
    base_arr = np.array(base, np.float32) + rng.normal(0, 12, 3)
    def noise(cell: int) -> np.ndarray:  # mostly brightness, a little hue
        shape = (max(2, h // cell), max(2, w // cell))
        grey = rng.normal(0, 1, (*shape, 1))
        field = (grey + 0.3 * rng.normal(0, 1, (*shape, 3))).astype(np.float32)
        return cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)

    low, mid = noise(32), noise(8)
    img = base_arr + contrast * (0.7 * low + 0.4 * mid) + rng.normal(0, 6, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 12))):  # grass blades, branches, stones, fence lines
        p0 = rng.uniform(0, 1, 2) * (w, h)
        p1 = p0 + rng.normal(0, 30, 2)
        colour = np.clip(base_arr + rng.normal(0, 50, 3), 0, 255)
        cv2.line(img, _pt(p0), _pt(p1), colour.tolist(), int(rng.integers(1, 4)), cv2.LINE_AA)
    return img, kind


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * 16)), int(round(float(p[1]) * 16))


def _segment(img: np.ndarray, mask: np.ndarray, a: np.ndarray, b: np.ndarray, wa: float,
             wb: float, colour: list[float]) -> None:
    """A tapered limb from a (half-width wa) to b (wb), drawn into image and mask."""
    d = b - a
    n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
    poly = np.array([a + n * wa, b + n * wb, b - n * wb, a - n * wa])
    pts = np.round(poly * 16).astype(np.int32)
    cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, shift=4)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_8, shift=4)
    for p, r in ((a, wa), (b, wb)):
        cv2.circle(img, _pt(p), int(r * 16), colour, -1, cv2.LINE_AA, shift=4)
        cv2.circle(mask, _pt(p), int(r * 16), 255, -1, cv2.LINE_8, shift=4)


def _ellipse(img: np.ndarray, mask: np.ndarray, c: np.ndarray, axes: tuple[float, float],
             angle: float, colour: list[float]) -> None:
    ax = (max(1, int(axes[0] * 16)), max(1, int(axes[1] * 16)))
    cv2.ellipse(img, _pt(c), ax, angle, 0, 360, colour, -1, cv2.LINE_AA, shift=4)
    cv2.ellipse(mask, _pt(c), ax, angle, 0, 360, 255, -1, cv2.LINE_8, shift=4)


def _shade(colour: tuple[int, int, int] | np.ndarray, k: float) -> list[float]:
    return np.clip(np.asarray(colour, np.float64) * k, 0, 255).tolist()


def render_animal(rng: np.random.Generator, w: int = 256, h: int = 256,
                  species: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int,
                                                       int]:
    """One image: RGB (h, w, 3), keypoints (17, 3), tight box (x, y, w, h), category id and
    background type."""
    name = species or list(SPECIES)[int(rng.integers(len(SPECIES)))]
    sp = SPECIES[name]
    img, background = _background(rng, w, h)
    colour = np.clip(np.array(sp.colour, np.float64) * rng.uniform(0.8, 1.15)
                     + rng.normal(0, 10, 3), 0, 255)
    length = rng.uniform(0.30, 0.55) * min(w, h) / max(0.8, sp.leg * 0.6 + sp.body_h * 0.5)
    length = min(length, 0.6 * w)
    facing = 1 if rng.random() < 0.5 else -1  # +1: head to the right (left side visible)
    tilt = math.radians(rng.normal(0, 8))
    rot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    total_h = sp.body_h * 0.5 + sp.leg + 0.1
    centre = np.array([rng.uniform(0.3, 0.7) * w,
                       rng.uniform(0.35, 0.55) * h - (sp.leg - 0.4) * length * 0.3])
    centre[1] = np.clip(centre[1], 0.2 * h, h - 0.5 * total_h * length)

    def to_img(p: tuple[float, float] | np.ndarray) -> np.ndarray:
        """Animal frame (x forward, y down, body length 1) → image pixels."""
        q = np.array(p, np.float64) * length
        q[0] *= facing
        return centre + rot @ q

    b = sp.body_h / 2
    kps = np.zeros((NUM_KEYPOINTS, 3))
    near, far = ("left", "right") if facing == 1 else ("right", "left")

    # legs: shoulder/hip attachment, elbow/knee, paw; a gait phase per leg
    phase = rng.uniform(0, 2 * math.pi)
    stride_amp = rng.uniform(0.1, 0.6)
    legs = {}
    for side, dphase, dx in ((near, 0.0, 0.0), (far, math.pi, 0.05)):
        for part, x0, off in (("front", 0.32, 0.0), ("back", -0.32, math.pi / 2)):
            a = stride_amp * math.sin(phase + dphase + off) + rng.normal(0, 0.08)
            bend = abs(rng.normal(0, 0.35)) * (1 if part == "front" else -1)
            top = np.array([x0 + dx, 0.45 * b])
            upper = sp.leg * 0.5
            mid = top + upper * np.array([math.sin(a), math.cos(a)])
            low = mid + sp.leg * 0.5 * np.array([math.sin(a + bend), math.cos(a + bend)])
            legs[(side, part)] = (top, mid, low)

    def leg_points(side: str, part: str) -> tuple[str, str, str]:
        if part == "front":
            return f"{side}_shoulder", f"{side}_elbow", f"{side}_front_paw"
        return f"{side}_hip", f"{side}_knee", f"{side}_back_paw"

    mask = np.zeros((h, w), np.uint8)  # the whole animal (for the box)
    body_mask = np.zeros((h, w), np.uint8)
    lw = sp.leg_w * length
    far_colour = _shade(colour, 0.7)
    for part in ("front", "back"):  # far legs, behind everything
        top, mid, low = (to_img(p) for p in legs[(far, part)])
        _segment(img, mask, top, mid, lw, lw * 0.8, far_colour)
        _segment(img, mask, mid, low, lw * 0.8, lw * 0.6, far_colour)

    # tail from the root, bending up or down
    root = np.array([-0.5, -0.45 * b])
    t_ang = rng.uniform(-0.5, 1.2)
    curl = rng.normal(0, 0.6)
    pts = [root]
    for i in range(4):
        ang = math.pi - t_ang + curl * i / 3  # pointing backwards, raised by t_ang
        pts.append(pts[-1] + sp.tail / 4 * np.array([math.cos(ang), -math.sin(ang)]))
    tail_pts = [to_img(p) for p in pts]
    for i in range(4):
        width = sp.tail_w * length * (1.0 - 0.15 * i)
        _segment(img, mask, tail_pts[i], tail_pts[i + 1], width, width * 0.9,
                 _shade(colour, 0.9))

    # neck and head
    neck_base = np.array([0.40, -0.55 * b])
    n_ang = math.radians(rng.uniform(15, 70))  # neck elevation
    head_c = neck_base + sp.neck * np.array([math.cos(n_ang), -math.sin(n_ang)])
    h_ang = math.radians(rng.uniform(-50, 25))  # head direction below horizontal (+ = down)
    hdir = np.array([math.cos(h_ang), math.sin(h_ang)])
    hup = np.array([hdir[1], -hdir[0]])

    # body
    body_c = to_img((0.0, 0.0))
    body_angle = math.degrees(tilt) if facing == 1 else -math.degrees(tilt)
    _ellipse(img, mask, body_c, (0.5 * length, b * length), body_angle if facing == 1 else
             180 + body_angle, colour.tolist())
    _ellipse(body_mask, body_mask, body_c, (0.5 * length, b * length),
             body_angle if facing == 1 else 180 + body_angle, [255])
    _segment(img, mask, to_img(neck_base - np.array([0.08, -0.05])), to_img(head_c),
             sp.neck_w * length, sp.neck_w * length * 0.7, colour.tolist())
    if sp.pattern != "plain":  # stripes or spots, only on the body
        layer = img.copy()
        pc = _shade(sp.pattern_colour, rng.uniform(0.8, 1.2))
        if sp.pattern == "stripes":
            for x in np.linspace(-0.45, 0.45, int(rng.integers(5, 10))):
                x = x + rng.normal(0, 0.02)
                cv2.line(layer, _pt(to_img((x, -b))), _pt(to_img((x - 0.05, b))), pc,
                         max(1, int(0.025 * length)), cv2.LINE_AA, shift=4)
        else:
            for _ in range(int(rng.integers(3, 8))):
                c = to_img((rng.uniform(-0.45, 0.45), rng.uniform(-b, b)))
                r = rng.uniform(0.04, 0.1) * length
                cv2.circle(layer, _pt(c), int(r * 16), pc, -1, cv2.LINE_AA, shift=4)
        img[body_mask > 0] = layer[body_mask > 0]

    head_centre = to_img(head_c + 0.3 * sp.head * hdir)
    head_angle = math.degrees(math.atan2(*(to_img(head_c + hdir) - to_img(head_c))[::-1]))
    _ellipse(img, mask, head_centre, (0.5 * sp.head * length, 0.5 * sp.head_h * length),
             head_angle, _shade(colour, 1.05))
    nose = head_c + 0.3 * sp.head * hdir + 0.5 * sp.head * hdir
    if sp.extra == "trunk":
        tip = nose + np.array([0.05, 0.35 + rng.uniform(-0.1, 0.1)])
        _segment(img, mask, to_img(nose - 0.05 * hdir), to_img(tip), 0.06 * length,
                 0.03 * length, colour.tolist())
        nose = tip
    if sp.extra in ("horns", "ears"):
        base = head_c + 0.15 * sp.head * hdir + 0.4 * sp.head_h * hup
        tip = base + (0.18 if sp.extra == "horns" else 0.08) * (hup - 0.5 * hdir)
        c = [40, 35, 30] if sp.extra == "horns" else _shade(colour, 0.8)
        _segment(img, mask, to_img(base), to_img(tip), 0.025 * length, 0.008 * length, c)

    for part in ("front", "back"):  # near legs, in front of the body
        top, mid, low = (to_img(p) for p in legs[(near, part)])
        _segment(img, mask, top, mid, lw, lw * 0.8, _shade(colour, 1.1))
        _segment(img, mask, mid, low, lw * 0.8, lw * 0.6, _shade(colour, 1.1))
        cv2.circle(img, _pt(low), int(lw * 0.7 * 16), _shade(colour, 0.4), -1, cv2.LINE_AA,
                   shift=4)

    # eyes: the near one on the visible side of the head; the far one shows only when the
    # head is turned towards the viewer
    eye = head_c + 0.45 * sp.head * hdir + 0.22 * sp.head_h * hup
    turned = rng.random() < 0.3
    far_eye = eye + 0.10 * sp.head_h * hup + 0.03 * hdir + np.array([0, 0.02])
    eye_r = max(1.0, 0.03 * length)
    cv2.circle(img, _pt(to_img(eye)), int(eye_r * 16), (15, 15, 15), -1, cv2.LINE_AA, shift=4)
    if turned:
        cv2.circle(img, _pt(to_img(far_eye)), int(eye_r * 16), (15, 15, 15), -1, cv2.LINE_AA,
                   shift=4)
    cv2.circle(img, _pt(to_img(nose)), int(eye_r * 1.2 * 16), (30, 20, 20), -1, cv2.LINE_AA,
               shift=4)

    def put(name: str, p: np.ndarray, visible: bool = True) -> None:
        q = to_img(p)
        kps[INDEX[name]] = (q[0], q[1], 2.0 if visible else 0.0)

    put(f"{near}_eye", eye)
    put(f"{far}_eye", far_eye, turned)
    put("nose", nose)
    put("neck", neck_base)
    put("root_of_tail", root)
    for side in (near, far):
        for part in ("front", "back"):
            top_name, mid_name, low_name = leg_points(side, part)
            top, mid, low = legs[(side, part)]
            put(top_name, top, side == near)
            put(mid_name, mid)
            put(low_name, low)

    if rng.random() < 0.25:  # a foreground occluder (bush, rock) hides what lies under it
        occ = np.zeros((h, w), np.uint8)
        c = rng.uniform(0, 1, 2) * (w, h)
        axes = (int(rng.uniform(0.08, 0.2) * w), int(rng.uniform(0.08, 0.2) * h))
        cv2.ellipse(occ, _pt(c), (axes[0] * 16, axes[1] * 16), float(rng.uniform(0, 180)), 0,
                    360, 255, -1, cv2.LINE_8, shift=4)
        occ_colour = np.clip(np.array(BACKGROUNDS[background][0]) * rng.uniform(0.5, 0.9), 0,
                             255)
        img[occ > 0] = (occ_colour + rng.normal(0, 10, (int((occ > 0).sum()), 3))).clip(0, 255)
        for i in range(NUM_KEYPOINTS):
            x, y = int(round(kps[i, 0])), int(round(kps[i, 1]))
            if 0 <= x < w and 0 <= y < h and occ[y, x]:
                kps[i, 2] = 0
        mask[occ > 0] = 0

    inside = (kps[:, 0] >= 0) & (kps[:, 0] <= w - 1) & (kps[:, 1] >= 0) & (kps[:, 1] <= h - 1)
    kps[~inside, 2] = 0
    kps[kps[:, 2] == 0, :2] = 0.0  # unlabelled points carry (0, 0, 0) as in AP-10K
    ys, xs = np.nonzero(mask)
    if len(xs):
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
        box = np.array([x0, y0, x1 - x0 + 1, y1 - y0 + 1], np.float64)
    else:
        box = np.zeros(4)
    # AP-10K's rule: no labelled keypoint outside its instance's box
    lab = kps[:, 2] > 0
    if lab.any():
        lo = np.minimum(box[:2], kps[lab, :2].min(axis=0))
        hi = np.maximum(box[:2] + box[2:], kps[lab, :2].max(axis=0) + 1)
        box = np.concatenate([lo, hi - lo])
    img = cv2.GaussianBlur(img, (3, 3), rng.uniform(0.3, 1.0))
    noisy = img.astype(np.float32) + rng.normal(0, rng.uniform(2, 8), img.shape)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    return img, np.round(kps, 2), np.round(box, 2), sp.category_id, background


def generate(out: str | os.PathLike[str], n: int, seed: int = 0, val_fraction: float = 0.2,
             size: tuple[int, int] = (256, 256), progress: bool = True
             ) -> tuple[CocoDataset, CocoDataset]:
    """Render `n` images into `out/data/` and write `out/annotations/synth-{train,val}.json`.

    Image i is drawn from a generator seeded by (seed, i), so a larger `n` only adds images.
    The last `val_fraction` of the ids form the validation split.
    """
    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    images: list[ImageInfo] = []
    anns: list[Instance] = []
    indices = range(n)
    if progress:
        from tqdm import tqdm
        indices = tqdm(indices, desc="synth", unit="img")
    for i in indices:
        rng = np.random.default_rng([seed, i])
        w = int(rng.integers(int(size[0] * 0.75), size[0] + 1))
        h = int(rng.integers(int(size[1] * 0.75), size[1] + 1))
        img, kps, box, cat, background = render_animal(rng, w, h)
        image_id = i + 1
        name = f"{image_id:012d}.jpg"
        with atomic_path(out / "data" / name) as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append(ImageInfo(image_id, name, w, h, background))
        anns.append(Instance.from_keypoints(image_id, image_id, cat, kps,
                                            bbox=tuple(float(v) for v in box)))
    n_val = int(round(n * val_fraction))
    split = n - n_val
    info = {"description": f"ap10k synthetic animals (seed {seed})", "version": "1.0"}
    train = CocoDataset(images[:split], anns[:split], info=info, source="synth-train")
    val = CocoDataset(images[split:], anns[split:], info=info, source="synth-val")
    train.save(out / "annotations" / "synth-train.json")
    val.save(out / "annotations" / "synth-val.json")
    return train, val
