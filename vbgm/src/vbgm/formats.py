"""File types every command agrees on: which files are videos, which containers we can write.

One list for all commands, so that a folder given to `vbgm generate` and to `vbgm evaluate video`
yields the same videos (before, the lists differed and `.mpg` was silently skipped).
"""

from __future__ import annotations

from pathlib import Path

from vbgm.errors import VbgmError

# Input videos: containers FFmpeg (PyAV) reads that hold video.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m2v",
                  ".ts", ".m2ts", ".mts", ".wmv", ".asf", ".flv", ".3gp", ".ogv", ".vob")
# Output videos: suffix → FFmpeg muxer name (what `vbgm.mux` can write).
CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
OUTPUT_VIDEO_SUFFIXES = tuple(CONTAINERS)


def is_video(path: Path) -> bool:
    """Whether `path` has a video suffix (case-insensitive)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_files(folder: Path) -> list[Path]:
    """The videos directly in `folder` (by suffix, hidden files skipped), sorted by name."""
    if not folder.is_dir():
        raise VbgmError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir()
                   if is_video(p) and not p.name.startswith(".") and p.is_file())
    if not files:
        raise VbgmError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return files
