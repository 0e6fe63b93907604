"""Atomic file output: write to a temporary sibling, then rename over the target.

Temporary names are recognisable, `.NAME.vbgm-tmp-PID-TOKEN.SUFFIX`, so that a file left behind by
a process killed with `kill -9` (PID no longer alive) can be found and removed by a later run
(`remove_stale`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMP_TAG = ".vbgm-tmp-"
_TEMP_RE = re.compile(r"^\..+" + re.escape(TEMP_TAG) + r"(\d+)-[0-9a-f]+(\.[^.]*)?$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine): decides if a temporary is stale."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def temp_owner(name: str) -> int | None:
    """The PID in a vbgm temporary file name, or None when `name` is not one."""
    m = _TEMP_RE.match(name)
    return int(m.group(1)) if m else None


def make_temp(target: str | os.PathLike[str]) -> Path:
    """Create (exclusively, mode 0666 & ~umask) and return an empty temporary file next to
    `target`. The name keeps the target's suffix so that writers that look at it (PyAV, symusic,
    matplotlib) pick the right format."""
    target = Path(target)
    while True:
        tmp = target.parent / (f".{target.name}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"
                               f"{target.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def remove_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the vbgm temporary files in `folder` whose process is gone; returns them."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        pid = temp_owner(entry.name)
        if pid is None or pid_alive(pid) or not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` in one rename.

    On any exception (Ctrl-C included) the temporary file is removed and `target` is left as it
    was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = make_temp(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    write_bytes_atomic(target, text.encode("utf-8"))
