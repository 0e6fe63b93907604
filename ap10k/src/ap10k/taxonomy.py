"""The AP-10K taxonomy: 54 species (the COCO category ids) in 23 families.

Species ids are the `category_id`s of the official annotation files; the family is the category's
`supercategory`. Evaluation is per species, and the taxonomy-aware experiments (leave one species
out, across families, few-shot) select by family, so both directions are provided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ap10k import keypoints as kp
from ap10k.errors import AP10KError


@dataclass(frozen=True)
class Species:
    """One AP-10K category: `id` is the COCO category id, `family` its supercategory."""

    id: int
    name: str
    family: str


_BY_FAMILY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Bovidae", ("antelope", "argali sheep", "bison", "buffalo", "cow", "sheep")),
    ("Canidae", ("arctic fox", "dog", "fox", "wolf")),
    ("Castoridae", ("beaver",)),
    ("Cercopithecidae", ("alouatta", "monkey", "noisy night monkey", "spider monkey", "uakari")),
    ("Cervidae", ("deer", "moose")),
    ("Cricetidae", ("hamster",)),
    ("Elephantidae", ("elephant",)),
    ("Equidae", ("horse", "zebra")),
    ("Felidae", ("bobcat", "cat", "cheetah", "jaguar", "king cheetah", "leopard", "lion",
                 "panther", "snow leopard", "tiger")),
    ("Giraffidae", ("giraffe",)),
    ("Hippopotamidae", ("hippo",)),
    ("Hominidae", ("chimpanzee", "gorilla", "orangutan")),
    ("Leporidae", ("rabbit",)),
    ("Mephitidae", ("skunk",)),
    ("Muridae", ("mouse", "rat")),
    ("Mustelidae", ("otter", "weasel")),
    ("Procyonidae", ("raccoon",)),
    ("Rhinocerotidae", ("rhino",)),
    ("Sciuridae", ("marmot", "squirrel")),
    ("Suidae", ("pig",)),
    ("Talpidae", ("mole",)),
    ("Ursidae", ("black bear", "brown bear", "panda", "polar bear")),
    ("Vespertilionidae", ("bat",)),
)

# Ids run 1..54 in the order above (the official files' order).
SPECIES: tuple[Species, ...] = tuple(
    Species(i + 1, name, family)
    for i, (name, family) in enumerate(
        (name, family) for family, names in _BY_FAMILY for name in names
    )
)
FAMILIES: tuple[str, ...] = tuple(family for family, _ in _BY_FAMILY)
NUM_SPECIES = len(SPECIES)
NUM_FAMILIES = len(FAMILIES)

_BY_ID: dict[int, Species] = {s.id: s for s in SPECIES}
_BY_NAME: dict[str, Species] = {s.name: s for s in SPECIES}

# Background types of the `background` image field.
BACKGROUNDS: dict[int, str] = {
    1: "grass/savanna", 2: "forest/shrub", 3: "mud/rock", 4: "snowfield",
    5: "zoo/human habitation", 6: "swamp/riverside", 7: "desert/gobi", 8: "mugshot",
}


def species(species_id: int) -> Species:
    """The species with this category id; AP10KError when there is none."""
    try:
        return _BY_ID[species_id]
    except KeyError:
        raise AP10KError(
            f"unknown AP-10K species id {species_id} (valid: 1..{NUM_SPECIES})"
        ) from None


def species_by_name(name: str) -> Species:
    """The species with this name (case-insensitive, '_' or '-' may stand for a space)."""
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    try:
        return _BY_NAME[key]
    except KeyError:
        raise AP10KError(f"unknown AP-10K species {name!r}") from None


def is_species(species_id: int) -> bool:
    """Whether `species_id` is one of the 54 AP-10K category ids."""
    return species_id in _BY_ID


def family_of(species_id: int) -> str:
    """The family (supercategory) of a species id."""
    return species(species_id).family


def family_name(name: str) -> str:
    """The canonical spelling of a family name given in any case; AP10KError when unknown."""
    for family in FAMILIES:
        if family.lower() == name.strip().lower():
            return family
    raise AP10KError(f"unknown AP-10K family {name!r} (known: {', '.join(FAMILIES)})")


def species_of_family(family: str) -> tuple[int, ...]:
    """Species ids of one family, in id order."""
    family = family_name(family)
    return tuple(s.id for s in SPECIES if s.family == family)


def resolve(names: list[str] | tuple[str, ...]) -> tuple[int, ...]:
    """Species ids named by a mix of family names and species names (order kept, no repeats)."""
    out: list[int] = []
    for name in names:
        try:
            ids = species_of_family(name)
        except AP10KError:
            ids = (species_by_name(name).id,)
        out.extend(i for i in ids if i not in out)
    return tuple(out)


def slug(name: str) -> str:
    """A file-name-safe lower-case form: 'argali sheep' → 'argali-sheep'."""
    return name.strip().lower().replace(" ", "-")


def coco_categories() -> list[dict[str, Any]]:
    """The 54 `categories[]` entries exactly as the official files carry them."""
    return [
        {
            "id": s.id,
            "name": s.name,
            "supercategory": s.family,
            "keypoints": list(kp.NAMES),
            "skeleton": [list(e) for e in kp.SKELETON_1BASED],
        }
        for s in SPECIES
    ]
