"""The study folder's `manifest.json`: the systems, the videos, and which media file holds which
system's music for which video. Only the server and the report read the system names; the pages
show the files under opaque names."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from vbgm.errors import VbgmError

FORMAT = "vbgm-study"
VERSION = 1
MANIFEST = "manifest.json"
ANSWERS = "answers.sqlite"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")  # system names


@dataclass(frozen=True)
class Video:
    """One study video: its name (the source's stem) and, per system, the media file (relative
    to the study folder) with that system's music."""

    name: str
    versions: dict[str, str]


@dataclass(frozen=True)
class Manifest:
    """What `vbgm study make` wrote: study id (names the participant cookie), seed (of the
    counterbalancing), systems in command-line order, videos."""

    id: str
    seed: int
    systems: list[str]
    videos: list[Video]

    def to_json(self) -> str:
        """The manifest as JSON text."""
        return json.dumps({
            "format": FORMAT, "version": VERSION, "id": self.id, "seed": self.seed,
            "systems": self.systems,
            "videos": [{"name": v.name, "versions": v.versions} for v in self.videos],
        }, indent=2) + "\n"


def load(study: Path) -> Manifest:
    """Read and check `study/manifest.json`; a missing or malformed one is a VbgmError naming
    it."""
    path = study / MANIFEST
    if not study.is_dir():
        raise VbgmError(f"{study}: not a folder (make a study with `vbgm study make`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VbgmError(f"{path}: not found; {study} is not a study folder "
                        f"(make one with `vbgm study make`)") from None
    except (OSError, ValueError) as exc:
        raise VbgmError(f"{path}: cannot read the study manifest ({exc})") from exc
    try:
        if data.get("format") != FORMAT:
            raise ValueError("not a vbgm study manifest")
        systems = [str(s) for s in data["systems"]]
        videos = [Video(str(v["name"]), {str(k): str(f) for k, f in v["versions"].items()})
                  for v in data["videos"]]
        manifest = Manifest(str(data["id"]), int(data["seed"]), systems, videos)
        if len(systems) < 2 or not videos:
            raise ValueError("needs at least two systems and one video")
        for v in videos:
            if sorted(v.versions) != sorted(systems):
                raise ValueError(f"video {v.name!r} lacks a system's version")
            for f in v.versions.values():
                if Path(f).is_absolute() or ".." in Path(f).parts:
                    raise ValueError(f"media path {f!r} leaves the study folder")
                if not (study / f).is_file():
                    raise ValueError(f"media file {f} is missing")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise VbgmError(f"{path}: damaged study manifest ({exc})") from exc
    return manifest
