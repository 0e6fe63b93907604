"""The exception types the CLI turns into a single clear error line."""

from __future__ import annotations

import os


class VbgmError(Exception):
    """A user-facing failure: bad input, bad request, unusable file. The message names the file."""


def reason(exc: BaseException) -> str:
    """An OS or FFmpeg error in words, without internal numbers ("no space left on device")."""
    text = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return text[:1].lower() + text[1:]


class WriteError(VbgmError):
    """Writing an output failed (disk full, read-only folder, ...): blames the output, not the
    input it was made from."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        self.path = os.fspath(path)
        self.why = why
        super().__init__(f"cannot write {self.path}: {why}")
