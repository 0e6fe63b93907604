"""The Python API: background music for a video from another program, in three lines.

    import vbgm
    result = vbgm.score_video("clip.mp4", "clip_music.mp4", genre="rock", seed=7)
    print(result.midi, result.seconds)

It runs exactly what `vbgm generate` runs (`vbgm.pipeline.score_video`) with the same options in
the same words (genre, instruments, key, C, tempo, ...). The model is loaded once per checkpoint
and kept for the next call, so a program scoring many videos pays for it once. Bad input raises
`vbgm.errors.VbgmError` with a one-line message naming the file, and writes nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vbgm.errors import VbgmError

if TYPE_CHECKING:
    from vbgm.corpus_stats import CorpusStats
    from vbgm.model import CMT
    from vbgm.sampling import Request, SamplingConfig

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Scored:
    """What `score_video` wrote and what it made: the files (None = not asked for), the music's
    length, tempo and key ("" when the music chose none)."""

    video: Path
    midi: Path | None
    wav: Path | None
    plot: Path | None
    analysis: Path | None
    seconds: float
    tempo_bpm: float
    key: str
    timings: dict[str, float]


def parse_options(genre: str = "unknown", instruments: str | Sequence[str] = "all",
                  key: str = "auto", control: float = 0.7, tempo: float | None = None,
                  candidates: int = 1) -> tuple[Request, SamplingConfig, bool]:
    """The request, sampling configuration and auto-key flag of options given as the CLI's words
    (key: "auto", "free" or a key name such as "D minor"); VbgmError on a bad one. Shared by this
    API and `vbgm serve`, so both accept and refuse the same things as `vbgm generate`."""
    from vbgm.harmony import parse_key
    from vbgm.sampling import Request, SamplingConfig

    names = instruments.split(",") if isinstance(instruments, str) else list(instruments)
    if not any(str(n).strip() for n in names):
        raise VbgmError("no instrument chosen: name some of drums, piano, guitar, bass, strings")
    word = str(key).strip().lower()
    parsed = None if word in ("free", "auto", "") else parse_key(str(key))
    request = Request.parse(genre, [str(n) for n in names], key=parsed)
    if tempo is not None and not 20 <= tempo <= 300:
        raise VbgmError(f"tempo {tempo:g} is out of range (20..300 bpm)")
    if int(candidates) < 1:
        raise VbgmError(f"candidates must be at least 1, got {candidates}")
    return request, SamplingConfig(control=float(control)), word == "auto"


@functools.lru_cache(maxsize=2)
def warm_model(checkpoint: str | None = None) -> tuple[CMT, CorpusStats]:
    """The model and its corpus statistics, loaded once per checkpoint (None: the shipped one)
    and reused by every later call in this process."""
    from vbgm.pipeline import load_model_and_stats

    return load_model_and_stats(checkpoint)


def score_video(video: PathLike, output: PathLike, *, genre: str = "unknown",
                instruments: str | Sequence[str] = "all", control: float = 0.7,
                tempo: float | None = None, key: str = "auto", candidates: int = 1,
                seed: int = 0, keep_audio: bool = False, midi: PathLike | None = None,
                wav: PathLike | None = None, plot: PathLike | None = None,
                analysis: PathLike | None = None, checkpoint: PathLike | None = None,
                synth: str = "auto", force: bool = False,
                log: Callable[[str], None] | None = None) -> Scored:
    """Write `output` (a .mp4/.mov/.mkv/.m4v): `video` with generated music, and its MIDI
    (`midi`, default OUTPUT with .mid), plus the WAV, analysis plot and analysis JSON when given
    paths. Options are those of `vbgm generate`; `log` gets the progress lines (default: none).

    All outputs appear together or not at all; an existing output is an error unless `force`.
    """
    from vbgm.formats import OUTPUT_VIDEO_SUFFIXES
    from vbgm.harmony import key_name
    from vbgm.outputs import Outputs, check_outputs
    from vbgm.pipeline import score_video as run_pipeline

    src, out = Path(video), Path(output)
    if not src.is_file():
        raise VbgmError(f"{src}: no such video file")
    if out.suffix.lower() not in OUTPUT_VIDEO_SUFFIXES:
        raise VbgmError(f"{out}: the output must end in one of {', '.join(OUTPUT_VIDEO_SUFFIXES)}")
    request, config, auto_key = parse_options(genre, instruments, key, control, tempo,
                                              candidates)
    files = Outputs(video=out, midi=Path(midi) if midi else out.with_suffix(".mid"),
                    wav=Path(wav) if wav else None, plot=Path(plot) if plot else None,
                    analysis=Path(analysis) if analysis else None)
    check_outputs([src], [files], force)
    model, stats = warm_model(os.fspath(checkpoint) if checkpoint else None)
    music = run_pipeline(src, files, model, request, config, tempo=tempo,
                         candidates=int(candidates), seed=int(seed), keep_audio=keep_audio,
                         backend=synth, log=log or (lambda _line: None), stats=stats,
                         force=force, auto_key=auto_key)
    best = music.candidates[0]
    return Scored(video=out, midi=files.midi, wav=files.wav, plot=files.plot,
                  analysis=files.analysis, seconds=music.seconds, tempo_bpm=music.tempo_bpm,
                  key="" if best.key is None else key_name(best.key), timings=music.timings)
