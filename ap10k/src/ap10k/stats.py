"""Dataset statistics: counts per family and species, instances per image, keypoint visibility,
background types, and the long-tail plot of instances per species."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ap10k import keypoints as kp
from ap10k import taxonomy
from ap10k.dataset import CocoDataset


@dataclass
class DatasetStats:
    """Counts of one annotation file. Species and family dicts hold only those present.

    `labelled_fraction[name]` is the share of instances whose keypoint `name` has v > 0;
    `visibility[v]` counts keypoint entries by visibility value over all instances.
    """

    source: str
    num_images: int
    num_instances: int
    species_instances: dict[int, int]
    species_images: dict[int, int]
    family_instances: dict[str, int]
    family_images: dict[str, int]
    instances_per_image: dict[int, int]
    labelled_fraction: dict[str, float]
    visibility: dict[int, int]
    backgrounds: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (species keyed by name)."""
        return {
            "source": self.source, "num_images": self.num_images,
            "num_instances": self.num_instances,
            "species": {_species_name(s): {"instances": n, "images": self.species_images[s]}
                        for s, n in self.species_instances.items()},
            "families": {f: {"instances": n, "images": self.family_images[f]}
                         for f, n in self.family_instances.items()},
            "instances_per_image": self.instances_per_image,
            "labelled_fraction": self.labelled_fraction,
            "visibility": self.visibility, "backgrounds": self.backgrounds,
        }


def _species_name(sid: int) -> str:
    return taxonomy.species(sid).name if taxonomy.is_species(sid) else f"category {sid}"


def _family(sid: int) -> str:
    return taxonomy.family_of(sid) if taxonomy.is_species(sid) else "(not AP-10K)"


def compute(ds: CocoDataset) -> DatasetStats:
    """All statistics of a dataset."""
    species_instances = Counter(a.category_id for a in ds.annotations)
    species_images = Counter(s for im_species in
                             ({a.category_id for a in anns} for anns in
                              ds.instances_by_image().values())
                             for s in im_species)
    family_instances: Counter[str] = Counter()
    for s, n in species_instances.items():
        family_instances[_family(s)] += n
    family_images = Counter(f for anns in ds.instances_by_image().values()
                            for f in {_family(a.category_id) for a in anns})
    per_image = Counter(len(anns) for anns in ds.instances_by_image().values())
    names = kp.NAMES
    if ds.annotations:
        k = len(ds.annotations[0].keypoints)
        same_k = [a.keypoints for a in ds.annotations if len(a.keypoints) == k]
        vis = np.stack(same_k)[:, :, 2]
        if k != kp.NUM_KEYPOINTS:
            cat = ds.category_index().get(ds.annotations[0].category_id)
            names = cat.keypoints if cat and len(cat.keypoints) == k else tuple(map(str, range(k)))
        labelled = {n: float((vis[:, i] > 0).mean()) for i, n in enumerate(names)}
        values, counts = np.unique(vis, return_counts=True)
        visibility = {int(v) if float(v).is_integer() else float(v): int(c)
                      for v, c in zip(values, counts)}
    else:
        labelled, visibility = {n: 0.0 for n in names}, {}
    backgrounds = Counter(taxonomy.BACKGROUNDS.get(im.background, "unknown")
                          if im.background is not None else "absent" for im in ds.images)
    order = {f: i for i, f in enumerate(taxonomy.FAMILIES)}
    return DatasetStats(
        source=ds.source, num_images=len(ds.images), num_instances=len(ds.annotations),
        species_instances=dict(sorted(species_instances.items())),
        species_images=dict(sorted(species_images.items())),
        family_instances=dict(sorted(family_instances.items(), key=lambda x: order.get(x[0], 99))),
        family_images=dict(sorted(family_images.items(), key=lambda x: order.get(x[0], 99))),
        instances_per_image=dict(sorted(per_image.items())),
        labelled_fraction=labelled, visibility=dict(sorted(visibility.items())),
        backgrounds=dict(sorted(backgrounds.items(), key=lambda x: (-x[1], x[0]))),
    )


def format_stats(st: DatasetStats) -> str:
    """The statistics as a text report."""
    lines = [f"{st.source}: {st.num_images} images, {st.num_instances} instances, "
             f"{len(st.species_instances)} of {taxonomy.NUM_SPECIES} species, "
             f"{len(st.family_instances)} of {taxonomy.NUM_FAMILIES} families"]
    lines.append("\nper family (instances / images), species (instances):")
    for family, n in st.family_instances.items():
        members = [f"{_species_name(s)} {c}" for s, c in st.species_instances.items()
                   if _family(s) == family]
        lines.append(f"  {family:<17s} {n:6d} / {st.family_images[family]:<6d} "
                     + ", ".join(members))
    lines.append("\ninstances per image: " + ", ".join(
        f"{k}: {v}" for k, v in st.instances_per_image.items()))
    lines.append("visibility values: " + ", ".join(f"v={k}: {v}" for k, v in st.visibility.items()))
    lines.append("labelled (v > 0) per keypoint:")
    for name, frac in st.labelled_fraction.items():
        lines.append(f"  {name:<16s} {100 * frac:5.1f} %")
    lines.append("backgrounds: " + ", ".join(f"{k} {v}" for k, v in st.backgrounds.items()))
    return "\n".join(lines)


def plot_long_tail(st: DatasetStats, path: str | os.PathLike[str]) -> None:
    """Bar chart of instances per species, sorted, coloured by family, with per-family totals.

    Written atomically as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ap10k.atomic import atomic_path

    species = sorted(st.species_instances.items(), key=lambda x: (-x[1], x[0]))
    families = [f for f in taxonomy.FAMILIES if f in st.family_instances]
    families += [f for f in st.family_instances if f not in families]
    cmap = plt.get_cmap("tab20")
    colour = {f: cmap(i % 20) if i < 20 else plt.get_cmap("Dark2")(i - 20)
              for i, f in enumerate(families)}
    fig, (ax, ax_f) = plt.subplots(
        2, 1, figsize=(max(8.0, 0.28 * len(species) + 3), 8.5),
        gridspec_kw={"height_ratios": [3, 1.4]})
    x = np.arange(len(species))
    counts = [n for _, n in species]
    ax.bar(x, counts, color=[colour[_family(s)] for s, _ in species], edgecolor="none")
    ax.set_xticks(x, [_species_name(s) for s, _ in species], rotation=75, ha="right",
                  fontsize=8)
    ax.set_xlim(-0.6, len(species) - 0.4)
    ax.set_ylabel("instances")
    if counts and max(counts) / max(min(counts), 1) > 20:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    total = st.num_instances
    ax.set_title(f"{os.path.basename(st.source)}: {total} instances of {len(species)} species in "
                 f"{len(families)} families ({st.num_images} images)", fontsize=11)
    # cumulative share of instances: how long the tail is
    ax2 = ax.twinx()
    ax2.plot(x, 100 * np.cumsum(counts) / max(total, 1), color="0.3", lw=1.2, marker=".", ms=3)
    ax2.set_ylim(0, 103)
    ax2.set_ylabel("cumulative % of instances", color="0.3")
    ax.spines[["top"]].set_visible(False)
    ax2.spines[["top"]].set_visible(False)
    fam_sorted = sorted(families, key=lambda f: -st.family_instances[f])
    fx = np.arange(len(fam_sorted))
    ax_f.bar(fx, [st.family_instances[f] for f in fam_sorted],
             color=[colour[f] for f in fam_sorted])
    ax_f.set_xticks(fx, fam_sorted, rotation=35, ha="right", fontsize=8)
    ax_f.set_xlim(-0.6, max(len(fam_sorted), 1) - 0.4)
    ax_f.set_ylabel("instances per family")
    ax_f.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_f.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
