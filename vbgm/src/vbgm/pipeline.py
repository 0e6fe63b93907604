"""The product chain: video → analysis → controls → tokens → song → MIDI → audio → video.

Each stage is a call into its own module; this one only wires them and keeps the timings, so that
the CLI, `make demo` and the end-to-end benchmark run exactly the same code.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vbgm import corpus_stats
from vbgm.controls import describe_mode, video_auto_key
from vbgm.corpus_stats import CorpusStats
from vbgm.duck import DuckConfig
from vbgm.errors import VbgmError
from vbgm.harmony import key_name
from vbgm.model import CMT, load_checkpoint
from vbgm.outputs import Outputs, check_outputs, stem_files
from vbgm.sampling import Controls, Generated, Request, SamplingConfig, describe_fit, generate
from vbgm.song import ONSET, VELOCITY, Song

if TYPE_CHECKING:  # the video stack is imported only when a video is analysed
    from vbgm.video import AnalysisConfig, VideoAnalysis

DEFAULT_CHECKPOINT = "default.pt"  # inside the package's assets/


def default_checkpoint() -> Path:
    """The model shipped inside the package (see assets/MODEL_CARD.md)."""
    path = Path(str(resources.files("vbgm") / "assets" / DEFAULT_CHECKPOINT))
    if not path.is_file():
        raise VbgmError(f"{path}: the shipped model is missing; pass --checkpoint")
    return path


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread while a checkpoint loads: its ~80 small per-tensor checks and
    conversions cost 1 s with the thread pool on a busy 2-core machine, 0.1 s without it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_model(checkpoint: str | os.PathLike[str] | None = None) -> CMT:
    """The model at `checkpoint`, or the shipped default one."""
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    with _one_thread():
        model, _ = load_checkpoint(path)
    return model


def stats_of(meta: dict) -> CorpusStats:
    """The corpus statistics a checkpoint's meta (from `load_checkpoint`) carries, else the
    shipped ones (the default model, and checkpoints trained before statistics were stored)."""
    stored = meta.get("extra", {}).get("corpus_stats")
    return CorpusStats.from_dict(stored) if stored else corpus_stats.shipped()


def load_model_and_stats(checkpoint: str | os.PathLike[str] | None = None
                         ) -> tuple[CMT, CorpusStats]:
    """The model at `checkpoint` (None: the shipped one) and the corpus statistics it was
    trained with (`stats_of`), reading the file once."""
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    with _one_thread():
        model, meta = load_checkpoint(path)
    return model, stats_of(meta)


@dataclass(frozen=True)
class FadeConfig:
    """Velocity fades at the ends of the music, in sixteenths, and the softest factor."""

    fade_in: int = 4
    fade_out: int = 8
    floor: float = 0.35


def fade_velocities(song: Song, fade: FadeConfig = FadeConfig()) -> Song:
    """Scale velocities up over the first and down over the last sixteenths of the song."""
    notes = song.notes.copy()
    if len(notes) == 0:
        return song
    t = (notes[:, ONSET] - song.start).astype(np.float64)
    gain = np.ones(len(notes))
    if fade.fade_in > 0:
        gain = np.minimum(gain, fade.floor + (1 - fade.floor) * np.clip(t / fade.fade_in, 0, 1))
    if fade.fade_out > 0:
        left = (song.length - t) / fade.fade_out
        gain = np.minimum(gain, fade.floor + (1 - fade.floor) * np.clip(left, 0, 1))
    notes[:, VELOCITY] = np.clip(np.round(notes[:, VELOCITY] * gain), 1, 127)
    return Song(notes=notes, n_sixteenths=song.n_sixteenths, genre=song.genre, start=song.start)


@dataclass
class Music:
    """What generation gives for one video (or one `compose` request)."""

    song: Song
    tempo_bpm: float
    candidates: list[Generated]
    timings: dict[str, float] = field(default_factory=dict)
    key: int | None = None  # the key of the MIDI's key signature (None: unknown)
    loop: bool = False  # made loopable (`vbgm.loop`): render it with `loop_samples`

    @property
    def seconds(self) -> float:
        return self.song.length * 15.0 / self.tempo_bpm


def compose(model: CMT, controls: Controls, tempo_bpm: float, request: Request = Request(),
            config: SamplingConfig = SamplingConfig(), candidates: int = 1, seed: int = 0,
            fade: FadeConfig = FadeConfig(), progress: bool = False,
            stats: CorpusStats | None = None, loop: bool = False) -> Music:
    """Generate music for controls at a tempo; keeps the candidate that fits them best.

    stats: the model's corpus statistics (`load_model_and_stats`; None = the shipped ones).
    loop: make it loopable (`vbgm.loop.make_loop`: no fades, a V -> I cadence across the seam, in
        the requested key, else in the key the key finder hears in the whole song).
    """
    t0 = time.perf_counter()
    try:
        gens = generate(model, controls, request, config, candidates=candidates, seed=seed,
                        progress=progress, stats=stats)
    except RuntimeError as exc:  # torch.multinomial on NaN/inf: weights that load_checkpoint
        if "probability tensor" not in str(exc):  # could not tell were damaged
            raise
        raise VbgmError("the model gave invalid probabilities (NaN or infinite): its "
                        "checkpoint is probably damaged") from exc
    if loop:
        from vbgm.loop import make_loop

        song, key = make_loop(gens[0].song, request.key)  # free: the key finder's, whole song
    else:
        song, key = fade_velocities(gens[0].song, fade), gens[0].key
    return Music(song=song, tempo_bpm=tempo_bpm, candidates=gens,
                 timings={"generate": time.perf_counter() - t0}, key=key, loop=loop)


def free_controls(seconds: float, tempo_bpm: float) -> Controls:
    """Controls of a given length with nothing else asked (for `vbgm compose`)."""
    if seconds <= 0 or not np.isfinite(seconds):
        raise VbgmError(f"--seconds must be positive, got {seconds}")
    if not 20 <= tempo_bpm <= 300:
        raise VbgmError(f"--tempo {tempo_bpm:g} is out of range (20..300 bpm)")
    n = int(np.ceil(seconds * tempo_bpm / 15.0 - 1e-9))
    return Controls(n_sixteenths=max(n, 1))


def midi_bytes(score, start: tuple[float, float] | None = None) -> bytes:
    """The standard MIDI file of a symusic score, with the video's start offset (seconds, SMPTE
    rate; `vbgm.timecode`) when there is a video. Bytes, written by the caller: symusic's
    dump_midi ignores a full disk."""
    from vbgm.timecode import with_smpte_offset

    data = score.dumps_midi()
    return data if start is None else with_smpte_offset(data, *start)


def loop_length(music: Music, sample_rate: int = 44100) -> int | None:
    """Samples of one pass of `music` when it is a loop, else None."""
    from vbgm.loop import loop_samples

    return loop_samples(music.song.length, music.tempo_bpm, sample_rate) \
        if music.loop else None


def render_outputs(tx, score, scratch: Path, backend: str = "auto",
                   stems: Path | None = None, start: tuple[float, float] | None = None,
                   loop: int | None = None):
    """Render `score` into `scratch` (a raw float file; the caller owns the folder) and, with a
    `stems` folder, add to the transaction `tx` one WAV (the mix's gain and limiter applied, so
    the stems sum to the mix) and one MIDI per track (with the video's `start`), written now.
    loop: the loop's length in samples (`vbgm.loop.loop_samples`): the mix and stems come out
    that long, their release tails folded onto the start (`vbgm.loop.seamless`).

    Returns (the mix's AudioFile, [{"instrument", "wav", "midi"}] of the stems written)."""
    from vbgm.midi import track_score
    from vbgm.render import render_with_stems, write_wav

    names = [str(t.name) for t in score.tracks] if stems is not None else []
    mix, parts = render_with_stems(score, scratch / "music.f32",
                                   [scratch / f"stem{i}.f32" for i in range(len(names))],
                                   44100, backend=backend)
    if loop is not None:
        from vbgm.loop import seamless

        mix, parts = seamless(mix.to_array(), [p.to_array() for p in parts], loop, 44100)
    files = stem_files(stems, names) if names else []
    tx.add(files)
    listing: list[dict[str, str]] = []
    for i, (name, part) in enumerate(zip(names, parts)):
        wav, mid = files[2 * i], files[2 * i + 1]
        write_wav(tx.path(wav), part, 44100)
        tx.path(mid).write_bytes(midi_bytes(track_score(score, i), start))
        listing.append({"instrument": name.lower(), "wav": str(wav), "midi": str(mid)})
    return mix, listing


def score_video(video: Path, out: Outputs, model: CMT, request: Request = Request(),
                config: SamplingConfig = SamplingConfig(), tempo: float | None = None,
                candidates: int = 1, seed: int = 0, keep_audio: bool = False,
                backend: str = "auto", progress: bool = False, log=print,
                stats: CorpusStats | None = None, force: bool = True, warn=None,
                auto_key: bool = False, duck: DuckConfig | None = None,
                loop: bool = False, analysis: VideoAnalysis | None = None,
                analysis_s: float | None = None,
                analysis_config: AnalysisConfig | None = None) -> Music:
    """Analyse `video`, compose music for it, write MIDI / WAV / plot / JSON and the muxed video.

    stats: the model's corpus statistics (`load_model_and_stats`; None = the shipped ones).
    force: replace existing outputs (else VbgmError "already exists", checked again at write time).
    warn: where one-line warnings go (None: stderr).
    auto_key: when the request names no key, pick one from the video (`controls.video_auto_key`).
    duck: with keep_audio, lower the music under the video's loud sound (`vbgm.duck`); the
        curve is drawn on the plot and summarised in the analysis JSON.
    loop: loopable music spanning the video (`vbgm.loop`); the WAV is the seamless loop.
    analysis: this video's analysis from an earlier run (new music for the same video, e.g. with
        another seed, without analysing it again) or made ahead (`video.AnalysisAhead`); `tempo`
        is then the analysis's. analysis_s: the seconds it took there, for the log.
    analysis_config: how the video is analysed (without `analysis`; None = the defaults).

    The outputs are one transaction (`vbgm.transaction`): the destination is checked (writable,
    room) before the analysis, and the files appear together only when all were written; any
    failure, Ctrl-C or SIGTERM leaves none of them (and no temporary) behind.
    """
    from vbgm.midi import song_to_score
    from vbgm.mux import mux
    from vbgm.render import write_wav
    from vbgm.timecode import video_start
    from vbgm.transaction import Transaction, room_for
    from vbgm.video import AnalysisConfig, analyze

    check_outputs([video], [out], force=True)  # never the input, whatever `force` says
    timings: dict[str, float] = {}
    with Transaction(out.paths(), force=force, need_bytes=room_for([video])) as tx:
        t = time.perf_counter()
        if analysis is None:
            analysis = analyze(video, analysis_config or AnalysisConfig(), tempo=tempo,
                               progress=progress)
        timings["analyze"] = time.perf_counter() - t
        ahead = "" if analysis_s is None else f"; {analysis_s:.1f} s while starting up"
        by_cuts = " (its cuts' pace)" if analysis.tempo_source == "cuts" else ""
        log(f"  analysed: {analysis.duration_s:.1f} s at {analysis.tempo_bpm:g} bpm{by_cuts}, "
            f"{len(analysis.bars)} bars{analysis.pickup_text}, {len(analysis.beats)} visual beats "
            f"({len(analysis.cuts)} cuts) [{timings['analyze']:.1f} s{ahead}]")
        controls = Controls.from_analysis(analysis)
        if auto_key and request.key is None:
            request = replace(request, key=video_auto_key(analysis, seed))
            dens = [b.density for b in analysis.bars]
            log(f"  key {key_name(request.key)}: {describe_mode(analysis.brightness, dens)}")
        music = compose(model, controls, analysis.tempo_bpm, request, config, candidates, seed,
                        progress=progress, stats=stats, loop=loop)
        timings.update(music.timings)
        best = music.candidates[0]
        key = "" if music.key is None else f" in {key_name(music.key)}"
        log(f"  generated: {len(best.tokens)} tokens, {len(music.song.notes)} notes{key}, "
            f"{len(best.sections)} section(s) from bar"
            + ("s " if len(best.sections) > 1 else " ") + ", ".join(map(str, best.sections))
            + (f" (best of {candidates}: " + ", ".join(f"{g.score:.2f}" for g in music.candidates)
               + ")" if candidates > 1 else "") + f" [{timings['generate']:.1f} s]")
        log(f"  {describe_fit(music.song, controls)}")
        t = time.perf_counter()
        score = song_to_score(music.song, analysis.tempo_bpm, key=music.key,
                              cut_times=[b.time_s for b in analysis.cuts], sections=best.sections)
        start = video_start(video)  # where bar 1 sits on the video's timecode
        if out.midi:
            tx.path(out.midi).write_bytes(midi_bytes(score, start))
        with tempfile.TemporaryDirectory(prefix="vbgm-audio-") as scratch:  # blocks: flat memory
            audio, stems = render_outputs(tx, score, Path(scratch), backend, out.stems, start,
                                          loop=loop_length(music))
            timings["render"] = time.perf_counter() - t
            if out.wav:
                write_wav(tx.path(out.wav), audio, 44100)
            t = time.perf_counter()
            muxed = mux(video, audio, 44100, tx.path(out.video), keep_audio=keep_audio,
                        duck=duck, **({"warn": warn} if warn else {}))
            timings["mux"] = time.perf_counter() - t
        log(f"  rendered + muxed [{timings['render']:.1f} s + {timings['mux']:.1f} s]")
        ducking = muxed.ducking
        if duck is not None and keep_audio and ducking is None:
            log("  not ducked: the video has no sound of its own to duck under")
        if ducking is not None:
            down = float(np.mean(ducking[1] <= -duck.amount_db + 1e-6)) * muxed.duration_s
            log(f"  ducked the music by {duck.amount_db:g} dB for {down:.1f} s of loud original "
                f"sound")
        if out.analysis:
            doc = analysis.to_dict() | ({"stems": stems} if stems else {})
            if ducking is not None:
                doc["ducking"] = {"amount_db": duck.amount_db, "hop_s": duck.hop_s,
                                  "gain_db": [round(float(g), 2) for g in ducking[1]]}
            tx.path(out.analysis).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        if out.plot:
            from vbgm.plot import plot_analysis

            plot_analysis(analysis, tx.path(out.plot), notes=music.song.notes,
                          sections=best.sections, ducking=ducking)
        tx.commit()
    music.timings = timings
    return music
