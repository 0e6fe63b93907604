"""Where one video's results go, and the check that they may be written: plain paths, no
model or media library, so that a command can refuse a bad destination before it loads either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outputs:
    """Where one video's results go (None = not written)."""

    video: Path
    midi: Path | None = None
    wav: Path | None = None
    plot: Path | None = None
    analysis: Path | None = None
    stems: Path | None = None  # folder of one WAV and one MIDI per instrument that played

    def paths(self) -> list[Path]:
        """The files known before generation (the stems depend on what plays)."""
        return [p for p in (self.video, self.midi, self.wav, self.plot, self.analysis) if p]


def stem_files(folder: Path | None, names: list[str] | None = None) -> list[Path]:
    """The stem WAV and MIDI of each instrument track name in `names` (default: every one that
    could play) inside `folder`; none without a folder."""
    from vbgm.midi import TRACK_NAMES

    if folder is None:
        return []
    return [folder / f"{name.lower()}.{ext}" for name in (names or TRACK_NAMES)
            for ext in ("wav", "mid")]


def check_outputs(inputs: list[Path], outputs: list[Outputs], force: bool) -> None:
    """Refuse, before any work, outputs that are inputs, repeat, or exist (unless `force`),
    the stems every instrument could write included."""
    from vbgm.transaction import check_targets

    check_targets(inputs, [p for out in outputs for p in out.paths() + stem_files(out.stems)],
                  force)
