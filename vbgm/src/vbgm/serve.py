"""`vbgm serve`: the web app and its HTTP API (Gradio), for people and programs without a CLI.

One process keeps the model (and the symusic SoundFont, when that renderer is used) loaded; every
request runs the same pipeline as `vbgm generate` / `vbgm compose`. Safety and limits:

- The server binds 127.0.0.1 unless told otherwise.
- Uploads are limited in size (Gradio refuses bigger ones; checked again here) and in duration,
  and are accepted as videos only when PyAV decodes video frames from them: the name proves
  nothing. A refused upload gets one clear message in the page (a `gr.Error`), never a
  traceback, and the server keeps serving.
- No path from the client is used on disk: an upload is the file Gradio stored in its own upload
  folder (checked), copied into a fresh per-job folder under fixed names.
- At most `max_jobs` jobs run at once and `max_jobs` more wait (the page shows the position in
  line); a request beyond that is refused by Gradio's queue ("Queue is full ...").
- Job folders, and Gradio's copies of uploads and results, are removed `keep_minutes` after the
  job ended (a running job's folder is never swept).
- Cancel (also the API's /cancel) drops the session's waiting jobs and stops its running one at
  the next stage boundary (analyse → compose → render + mux → plot); that job's folder is
  removed (the pipeline's transaction never leaves partial outputs).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no phone-home

import gradio as gr  # noqa: E402  (module level: Gradio reads the handlers' gr.Request hints)

from vbgm.errors import VbgmError

SAMPLE_RATE = 44100
JOB_NAME = re.compile(r"job-[0-9a-f]{16}")
# Bundled demo clips: procedural videos (vbgm.demo_video) made on first use: label → (s, seed).
DEMO_CLIPS: dict[str, tuple[float, int]] = {"shapes, 8 s (two cuts)": (8.0, 0),
                                            "shapes, 16 s (two cuts)": (16.0, 1)}
NO_DEMO = "(none: use the upload)"
INSTRUMENT_NAMES = ("drums", "piano", "guitar", "bass", "strings")


@dataclass(frozen=True)
class ServeConfig:
    """How `vbgm serve` runs: where it listens, which model, and its limits."""

    host: str = "127.0.0.1"
    port: int = 7860
    checkpoint: Path | None = None
    max_jobs: int = 2  # jobs running at once; as many more may wait in line
    max_upload_mb: float = 200.0
    max_seconds: float = 300.0  # longest video (and longest composed music) accepted
    keep_minutes: float = 30.0  # job files are removed this long after they were made
    synth: str = "auto"

    def __post_init__(self) -> None:
        if self.max_jobs < 1:
            raise VbgmError(f"--max-jobs must be at least 1, got {self.max_jobs}")
        for name in ("max_upload_mb", "max_seconds", "keep_minutes"):
            if not getattr(self, name) > 0:
                raise VbgmError(f"--{name.replace('_', '-')} must be positive, "
                                f"got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise VbgmError(f"--port must be 0..65535, got {self.port}")

    def limits(self) -> str:
        """The limits in one line (printed at start and shown in the page)."""
        return (f"uploads up to {self.max_upload_mb:g} MB and {self.max_seconds:g} s of video; "
                f"{self.max_jobs} job(s) at once and {self.max_jobs} waiting, more are refused; "
                f"results kept {self.keep_minutes:g} min")


class Cancelled(VbgmError):
    """The user pressed Cancel: the job stops at its next stage boundary."""


def check_video(path: Path, name: str, max_bytes: int, max_seconds: float) -> float:
    """The duration (s) of the upload at `path` after checking it is a video we accept: within
    `max_bytes`, decodable by PyAV (two video frames at least), at most `max_seconds` long.

    `name` is only for the message (the client's file name; never used on disk). VbgmError with
    one line naming it otherwise."""
    import av

    size = path.stat().st_size
    if size == 0:
        raise VbgmError(f"{name}: empty file (0 bytes)")
    if size > max_bytes:
        raise VbgmError(f"{name}: {size / 2**20:.1f} MB is over the upload limit of "
                        f"{max_bytes / 2**20:g} MB")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VbgmError(f"{name}: not a video (no video stream)")
            stream = container.streams.video[0]
            frames = 0
            for _ in container.decode(stream):  # two frames: a picture is not a video
                frames += 1
                if frames == 2:
                    break
            if frames < 2:
                raise VbgmError(f"{name}: not a video (" + ("a single picture)" if frames else
                                                           "no frame could be decoded)"))
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:  # no declared length: the last packet's time
                container.seek(0)
                ends = [float((p.pts + (p.duration or 0)) * p.time_base)
                        for p in container.demux(stream) if p.pts is not None]
                seconds = max(ends, default=0.0)
    except VbgmError:
        raise
    except (av.FFmpegError, UnicodeDecodeError, StopIteration) as exc:
        why = " ".join(str(getattr(exc, "strerror", None) or exc).split())
        raise VbgmError(f"{name}: not a video file we can decode ({why})") from exc
    if seconds > max_seconds:
        raise VbgmError(f"{name}: {seconds:.1f} s is longer than the limit of {max_seconds:g} s")
    return seconds


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_arenas(n: int = 2) -> None:
    """At most `n` glibc malloc arenas: each job thread would otherwise get its own (up to 8 per
    core), each keeping its freed pages. No-op where glibc's mallopt is missing."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, n)


def release_memory() -> None:
    """Give freed memory back to the operating system: a job's arrays are freed when it ends,
    but glibc keeps the pages in its per-thread arenas, so a long-running server's resident size
    would only grow with the jobs it has run. No-op where glibc's malloc_trim is missing."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Engine:
    """What stays warm between requests: the model, its statistics, the audio renderer; and the
    server's working folder with one sub-folder per job, swept after `keep_minutes`."""

    def __init__(self, config: ServeConfig) -> None:
        from vbgm.pipeline import load_model_and_stats
        from vbgm.render import _synthesizer, choose_backend

        self.config = config
        limit_arenas()
        self.model, self.stats = load_model_and_stats(config.checkpoint)
        self.backend, soundfont = choose_backend(config.synth)
        if self.backend == "symusic":  # load the SoundFont now, not in the first request
            _synthesizer(str(soundfont), SAMPLE_RATE)
        self.root = Path(tempfile.mkdtemp(prefix="vbgm-serve-"))
        self.slots = threading.BoundedSemaphore(config.max_jobs)
        self.cancels: dict[str, threading.Event] = {}
        self.active: set[Path] = set()  # folders of running jobs
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # --- job folders ---------------------------------------------------------------------

    def new_job(self) -> Path:
        """A fresh, empty job folder with an unguessable name; not swept until `finished`."""
        folder = self.root / f"job-{secrets.token_hex(8)}"
        folder.mkdir()
        with self._lock:
            self.active.add(folder)
        return folder

    def finished(self, folder: Path) -> None:
        """The job in `folder` ended: its keep time starts now, and its memory goes back to the
        system once no job runs (`release_memory`)."""
        with self._lock:
            self.active.discard(folder)
            idle = not self.active
        with contextlib.suppress(FileNotFoundError):
            os.utime(folder)
        if idle:
            release_memory()

    def job(self, job_id: str | None) -> Path | None:
        """The folder of an earlier job by its id (None when unknown or already swept)."""
        if not job_id or not JOB_NAME.fullmatch(job_id):
            return None
        folder = self.root / job_id
        return folder if folder.is_dir() else None

    def sweep(self, now: float | None = None) -> int:
        """Remove the job folders older than `keep_minutes`; returns how many."""
        limit = (time.time() if now is None else now) - self.config.keep_minutes * 60
        removed = 0
        with self._lock:
            active = set(self.active)
        for folder in self.root.glob("job-*"):
            if folder in active:  # a job still running (it may outlast the keep time)
                continue
            try:
                if folder.stat().st_mtime < limit:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def start_janitor(self) -> None:
        """Sweep in the background, a few times per keep period (at least every minute)."""
        period = min(60.0, max(1.0, self.config.keep_minutes * 60 / 4))

        def loop() -> None:
            while not self._stop.wait(period):
                self.sweep()

        threading.Thread(target=loop, name="vbgm-janitor", daemon=True).start()

    def close(self) -> None:
        """Stop the janitor and remove the working folder."""
        self._stop.set()
        shutil.rmtree(self.root, ignore_errors=True)

    def demo_clip(self, label: str) -> Path:
        """The bundled demo clip `label`, made on first use (a procedural video with cuts)."""
        from vbgm.demo_video import make_demo_video

        if label not in DEMO_CLIPS:
            raise VbgmError(f"unknown demo clip {label!r}")
        seconds, seed = DEMO_CLIPS[label]
        path = self.root / "demos" / f"demo-{seed}.mp4"
        with self._lock:
            if not path.is_file():
                path.parent.mkdir(exist_ok=True)
                make_demo_video(path, seconds=seconds, size=(480, 270), seed=seed)
        return path

    # --- cancelling ----------------------------------------------------------------------

    def cancel_event(self, session: str) -> threading.Event:
        """A fresh cancel flag for the session's next job."""
        with self._lock:
            event = self.cancels[session] = threading.Event()
        return event

    def forget(self, session: str, event: threading.Event) -> None:
        """Drop the session's flag once its job `event` belongs to has ended."""
        with self._lock:
            if self.cancels.get(session) is event:
                del self.cancels[session]

    def cancel(self, session: str) -> None:
        """Ask the session's running job to stop."""
        with self._lock:
            event = self.cancels.get(session)
        if event is not None:
            event.set()


# --- the jobs, callable without Gradio ------------------------------------------------------

Report = Callable[[float, str], None]  # progress: fraction done, stage in words


def _stage_log(report: Report, cancel: threading.Event, stages: list[tuple[str, float, str]]
               ) -> Callable[[str], None]:
    """A pipeline `log` callback that turns its lines into stage progress and stops the job
    (raising Cancelled) at a stage boundary once `cancel` is set. stages: (line prefix seen,
    fraction done, next stage's words)."""

    def log(line: str) -> None:
        if cancel.is_set():
            raise Cancelled("cancelled")
        text = line.strip()
        for prefix, fraction, words in stages:
            if text.startswith(prefix):
                report(fraction, words)

    return log


VIDEO_STAGES = [("analysed", 0.3, "2/4 compose"), ("generated", 0.6, "3/4 render + mux"),
                ("rendered", 0.9, "4/4 plot")]
RESEED_STAGES = [("generated", 0.5, "2/3 render + mux"), ("rendered", 0.9, "3/3 plot")]


def _outputs(folder: Path, stems: bool = False):
    from vbgm.outputs import Outputs

    return Outputs(video=folder / "music.mp4", midi=folder / "music.mid",
                   wav=folder / "music.wav", plot=folder / "analysis.png",
                   analysis=folder / "analysis.json", stems=folder / "stems" if stems else None)


def generate_job(engine: Engine, source: Path, name: str, options: dict[str, Any],
                 report: Report, cancel: threading.Event) -> tuple[Path, str]:
    """Score the checked video `source` into a new job folder; returns (folder, summary).
    options: parse_options' keywords + seed, keep_audio and stems."""
    from vbgm.api import parse_options
    from vbgm.pipeline import score_video

    request, config, auto_key = parse_options(
        options["genre"], options["instruments"], options["key"], options["control"],
        options["tempo"], options["candidates"])
    folder = engine.new_job()
    try:
        video = folder / "input"
        shutil.copyfile(source, video)
        out = _outputs(folder, options["stems"])
        warnings: list[str] = []
        report(0.02, "1/4 analyse")
        music = score_video(video, out, engine.model, request, config, tempo=options["tempo"],
                            candidates=options["candidates"], seed=options["seed"],
                            keep_audio=options["keep_audio"], backend=engine.backend,
                            log=_stage_log(report, cancel, VIDEO_STAGES), stats=engine.stats,
                            warn=warnings.append, auto_key=auto_key)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        engine.finished(folder)
    return folder, _summary(name, music, options["seed"], warnings)


def reseed_job(engine: Engine, earlier: Path, options: dict[str, Any], report: Report,
               cancel: threading.Event) -> tuple[Path, str]:
    """New music for an earlier job's video with its stored analysis (no new analysis), into a
    new job folder: `vbgm.pipeline.score_video` given that analysis."""
    from vbgm.api import parse_options
    from vbgm.pipeline import score_video
    from vbgm.video import VideoAnalysis

    request, config, auto_key = parse_options(
        options["genre"], options["instruments"], options["key"], options["control"], None,
        options["candidates"])
    try:
        analysis = VideoAnalysis.from_json((earlier / "analysis.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:  # swept just now
        raise VbgmError("the earlier result has expired: generate again") from exc
    folder = engine.new_job()
    try:
        video = folder / "input"
        try:
            os.link(earlier / "input", video)
        except FileNotFoundError as exc:  # swept just now
            raise VbgmError("the earlier result has expired: generate again") from exc
        warnings: list[str] = []
        report(0.05, "1/3 compose")
        music = score_video(video, _outputs(folder, options["stems"]), engine.model, request,
                            config, candidates=options["candidates"], seed=options["seed"],
                            keep_audio=options["keep_audio"], backend=engine.backend,
                            log=_stage_log(report, cancel, RESEED_STAGES), stats=engine.stats,
                            warn=warnings.append, auto_key=auto_key, analysis=analysis)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        engine.finished(folder)
    return folder, _summary("the same video", music, options["seed"], warnings)


def compose_job(engine: Engine, seconds: float, tempo: float, options: dict[str, Any],
                report: Report, cancel: threading.Event) -> tuple[Path, str]:
    """Music without a video (as `vbgm compose`) into a new job folder: music.mid, music.wav."""
    import tempfile as tf

    from vbgm.api import parse_options
    from vbgm.controls import auto_key_without_video
    from vbgm.midi import song_to_score
    from vbgm.pipeline import compose, free_controls, render_outputs
    from vbgm.render import write_wav
    from vbgm.transaction import Transaction, room_for

    if seconds > engine.config.max_seconds:
        raise VbgmError(f"length {seconds:g} s is longer than the limit of "
                        f"{engine.config.max_seconds:g} s")
    request, _, auto = parse_options(options["genre"], options["instruments"], options["key"])
    if auto and request.key is None:
        request = replace(request, key=auto_key_without_video(options["seed"]))
    controls = free_controls(seconds, tempo)
    folder = engine.new_job()
    mid, wav = folder / "music.mid", folder / "music.wav"
    try:
        report(0.05, "1/2 compose")
        need = room_for(extra_bytes=round(seconds * SAMPLE_RATE * 4))
        with Transaction([mid, wav], force=True, need_bytes=need) as tx:
            music = compose(engine.model, controls, tempo, request, seed=options["seed"],
                            stats=engine.stats)
            if cancel.is_set():
                raise Cancelled("cancelled")
            report(0.6, "2/2 render")
            best = music.candidates[0]
            score = song_to_score(music.song, tempo, key=best.key, sections=best.sections)
            tx.path(mid).write_bytes(score.dumps_midi())
            with tf.TemporaryDirectory(prefix="vbgm-audio-") as scratch:
                audio, _ = render_outputs(tx, score, Path(scratch), engine.backend)
                write_wav(tx.path(wav), audio, SAMPLE_RATE)
            tx.commit()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        engine.finished(folder)
    return folder, (f"{music.seconds:.1f} s of music at {tempo:g} bpm, "
                    f"{len(music.song.notes)} notes, seed {options['seed']}")


def _summary(name: str, music, seed: int, warnings: list[str]) -> str:
    from vbgm.harmony import key_name

    best = music.candidates[0]
    key = "" if best.key is None else f" in {key_name(best.key)}"
    text = (f"**{name}**: {music.seconds:.1f} s of music at {music.tempo_bpm:.1f} bpm{key}, "
            f"{len(music.song.notes)} notes, {len(best.sections)} section(s), seed {seed}")
    return text + "".join(f"\n\n{w}" for w in warnings)


# --- the Gradio app -------------------------------------------------------------------------

def _refusal(message: str, title: str = "Error", duration: float | None = 10) -> gr.Error:
    """The page's message for a job that cannot run; the server's log gets one line, not a
    traceback (Gradio prints one for every gr.Error unless told not to)."""
    print(f"vbgm serve: {title.lower()}: {message}", file=sys.stderr, flush=True)
    return gr.Error(message, title=title, duration=duration, print_exception=False)


def _run(engine: Engine, session: str, job: Callable[..., tuple[Path, str]], *args: Any,
         progress: Any) -> tuple[Path, str]:
    """Run a job in one of the engine's slots with a cancel flag and Gradio progress; a user
    error becomes a gr.Error (one line in the page), anything else is logged here and shown as
    a short apology, so the server keeps serving."""
    cancel = engine.cancel_event(session)

    def report(fraction: float, words: str) -> None:
        progress(fraction, desc=words)

    try:
        with engine.slots:
            if cancel.is_set():  # cancelled while waiting for a slot
                raise Cancelled("cancelled")
            return job(engine, *args, report, cancel)
    except Cancelled as exc:
        raise _refusal("Cancelled: nothing was kept.", title="Cancelled") from exc
    except VbgmError as exc:
        raise _refusal(str(exc), title="Cannot do that", duration=None) from exc
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        raise _refusal("The server failed on this job (its log has the details); try again "
                       "or with another video.", title="Server error", duration=None) from exc
    finally:
        engine.forget(session, cancel)


def _options(genre: str, instruments: list[str], control: float, tempo: float | None, key: str,
             candidates: float, seed: float, keep_audio: bool, stems: bool = False
             ) -> dict[str, Any]:
    return {"genre": genre, "instruments": list(instruments or []), "control": float(control),
            "tempo": float(tempo) if tempo else None, "key": key or "auto",
            "candidates": int(candidates or 1), "seed": int(seed or 0),
            "keep_audio": bool(keep_audio), "stems": bool(stems)}


def _upload(engine: Engine, video: str | None, demo: str | None) -> tuple[Path, str]:
    """The file to score and its display name: an upload (only a file inside Gradio's upload
    folder is accepted) or a bundled demo clip."""
    from gradio.utils import get_upload_folder, is_in_or_equal

    if video:
        path = Path(video)
        if not is_in_or_equal(path, get_upload_folder()) or not path.is_file():
            raise _refusal("Only uploaded files can be used.", title="Cannot do that")
        return path, path.name
    if demo and demo != NO_DEMO:
        try:
            return engine.demo_clip(demo), f"demo clip ({demo})"
        except VbgmError as exc:
            raise _refusal(str(exc), title="Cannot do that") from exc
    raise _refusal("Upload a video or pick a demo clip first.", title="No video")


def build_app(engine: Engine):
    """The Gradio Blocks app: Generate and Compose tabs; API endpoints /generate, /reseed (another
    seed for the session's last video), /compose and /cancel (the session's running job)."""
    from vbgm.harmony import key_name
    from vbgm.song import GENRE_IDS

    cfg = engine.config
    keys = ["auto", "free"] + [key_name(k) for k in range(24)]
    keep_s = max(1, round(cfg.keep_minutes * 60))

    def results(folder: Path, summary: str):
        files = [folder / n for n in ("music.mp4", "music.mid", "music.wav", "analysis.json")]
        files += sorted((folder / "stems").glob("*"))
        return (str(folder / "music.mp4"), str(folder / "analysis.png"),
                [str(f) for f in files], summary, folder.name)

    def generate(video, demo, genre, instruments, control, tempo, key, candidates, seed,
                 keep_audio, stems, request: gr.Request, progress=gr.Progress()):
        source, name = _upload(engine, video, demo)
        try:
            check_video(source, name, round(cfg.max_upload_mb * 2**20), cfg.max_seconds)
        except VbgmError as exc:
            raise _refusal(str(exc), title="Not a usable video", duration=None) from exc
        options = _options(genre, instruments, control, tempo, key, candidates, seed, keep_audio,
                           stems)
        folder, summary = _run(engine, request.session_hash or "", generate_job, source, name,
                               options, progress=progress)
        return results(folder, summary)

    def reseed(job_id, genre, instruments, control, key, candidates, seed, keep_audio, stems,
               request: gr.Request, progress=gr.Progress()):
        earlier = engine.job(job_id)
        if earlier is None or not (earlier / "analysis.json").is_file():
            raise _refusal("Generate first (or again: results are kept "
                           f"{cfg.keep_minutes:g} min).", title="Nothing to reuse")
        options = _options(genre, instruments, control, None, key, candidates,
                           int(seed or 0) + 1, keep_audio, stems)
        folder, summary = _run(engine, request.session_hash or "", reseed_job, earlier,
                               options, progress=progress)
        return (*results(folder, summary), options["seed"])

    def compose(seconds, tempo, genre, instruments, key, seed, request: gr.Request,
                progress=gr.Progress()):
        options = _options(genre, instruments, 0.7, None, key, 1, seed, False)
        folder, summary = _run(engine, request.session_hash or "", compose_job,
                               float(seconds or 0), float(tempo or 110), options,
                               progress=progress)
        return (str(folder / "music.wav"), [str(folder / "music.mid"), str(folder / "music.wav")],
                summary)

    def cancel(request: gr.Request) -> None:
        engine.cancel(request.session_hash or "")

    with gr.Blocks(title="vbgm: music for your video", analytics_enabled=False,
                   delete_cache=(max(1, keep_s // 4), keep_s)) as app:
        gr.Markdown("## vbgm: background music for a video\nThe music follows the video's "
                    f"motion, visual beats and cuts. Limits: {cfg.limits()}.")
        job_state = gr.State(None)
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    video = gr.Video(label="Video", sources=["upload"], elem_id="video-in")
                    demo = gr.Dropdown([NO_DEMO, *DEMO_CLIPS], value=NO_DEMO,
                                       label="…or a bundled demo clip")
                    genre = gr.Dropdown(list(GENRE_IDS), value="unknown", label="Genre")
                    instruments = gr.CheckboxGroup(list(INSTRUMENT_NAMES),
                                                   value=list(INSTRUMENT_NAMES),
                                                   label="Instruments")
                    control = gr.Slider(0, 1, value=0.7, step=0.05,
                                        label="Control degree C (0 free, 1 follow every control)")
                    with gr.Row():
                        tempo = gr.Number(0, label="Tempo, bpm (0 = from the video)",
                                          minimum=0, maximum=300)
                        key = gr.Dropdown(keys, value="auto", allow_custom_value=True,
                                          label="Key (auto, free, or a key)")
                    with gr.Row():
                        candidates = gr.Number(1, precision=0, minimum=1, maximum=8,
                                               label="Candidates (best fit kept)")
                        seed = gr.Number(0, precision=0, minimum=0, label="Seed")
                    with gr.Row():
                        keep_audio = gr.Checkbox(False, label="Keep the video's own sound "
                                                              "under the music")
                        stems = gr.Checkbox(False, label="Also stems (a WAV and a MIDI per "
                                                         "instrument)")
                    with gr.Row():
                        go = gr.Button("Generate", variant="primary", elem_id="generate")
                        again = gr.Button("Another seed", elem_id="reseed")
                        stop = gr.Button("Cancel", variant="stop", elem_id="cancel")
                with gr.Column():
                    status = gr.Markdown(elem_id="status")
                    video_out = gr.Video(label="Video with music", elem_id="video-out",
                                         interactive=False)
                    plot = gr.Image(label="Analysis: density, visual beats, notes",
                                    type="filepath", interactive=False, elem_id="plot")
                    files = gr.File(label="Downloads: MP4, MIDI, WAV, analysis JSON, stems",
                                    file_count="multiple", interactive=False,
                                    elem_id="downloads")
        with gr.Tab("Compose"):
            with gr.Row():
                with gr.Column():
                    c_seconds = gr.Number(20, label="Length, seconds", minimum=1,
                                          maximum=cfg.max_seconds)
                    c_tempo = gr.Number(110, label="Tempo, bpm", minimum=20, maximum=300)
                    c_genre = gr.Dropdown(list(GENRE_IDS), value="unknown", label="Genre")
                    c_instruments = gr.CheckboxGroup(list(INSTRUMENT_NAMES),
                                                     value=list(INSTRUMENT_NAMES),
                                                     label="Instruments")
                    c_key = gr.Dropdown(keys, value="auto",
                                        allow_custom_value=True, label="Key")
                    c_seed = gr.Number(0, precision=0, minimum=0, label="Seed")
                    c_go = gr.Button("Compose", variant="primary", elem_id="compose")
                    c_stop = gr.Button("Cancel", variant="stop")
                with gr.Column():
                    c_status = gr.Markdown()
                    c_audio = gr.Audio(label="Music", type="filepath", interactive=False)
                    c_files = gr.File(label="Downloads: MIDI, WAV", file_count="multiple",
                                      interactive=False)

        job = {"concurrency_id": "jobs", "concurrency_limit": cfg.max_jobs}
        outs = [video_out, plot, files, status, job_state]
        gen_evt = go.click(generate, [video, demo, genre, instruments, control, tempo, key,
                                      candidates, seed, keep_audio, stems], outs,
                           api_name="generate", **job)
        again_evt = again.click(reseed, [job_state, genre, instruments, control, key, candidates,
                                         seed, keep_audio, stems], [*outs, seed],
                                api_name="reseed", **job)
        comp_evt = c_go.click(compose, [c_seconds, c_tempo, c_genre, c_instruments, c_key,
                                        c_seed], [c_audio, c_files, c_status],
                              api_name="compose", **job)
        # Cancel: Gradio drops the session's waiting jobs; the running one stops at its next
        # stage boundary (a thread cannot be killed safely). Also an API endpoint, /cancel.
        stop.click(cancel, None, None, cancels=[gen_evt, again_evt, comp_evt], queue=False,
                   api_name="cancel")
        c_stop.click(cancel, None, None, cancels=[gen_evt, again_evt, comp_evt], queue=False,
                     api_visibility="private")
    app.queue(max_size=cfg.max_jobs, default_concurrency_limit=cfg.max_jobs)
    return app


def serve(config: ServeConfig, log: Callable[[str], None] = print) -> None:
    """Load the model, print the limits and the address, and serve until Ctrl-C or SIGTERM;
    the working folder is removed on the way out."""
    import signal

    t = time.perf_counter()
    engine = Engine(config)
    log(f"vbgm serve: model and renderer ({engine.backend}) ready in "
        f"{time.perf_counter() - t:.1f} s")
    log(f"vbgm serve: limits: {config.limits()}")
    app = build_app(engine)
    engine.start_janitor()
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind: clean up
    try:
        try:
            _, url, _ = app.launch(server_name=config.host, server_port=config.port,
                                   quiet=True, prevent_thread_lock=True, show_error=False,
                                   max_file_size=round(config.max_upload_mb * 2**20),
                                   allowed_paths=[str(engine.root)], ssr_mode=False)
        except OSError as exc:  # port taken, address not ours
            raise VbgmError(f"cannot listen on {config.host}:{config.port}: "
                            f"{' '.join(str(exc).split())}") from exc
        if config.host not in ("127.0.0.1", "localhost", "::1"):
            log(f"vbgm serve: listening on {config.host}: other machines can reach it")
        log(f"vbgm serve: {url} (Ctrl-C stops)")
        try:
            while app.is_running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            log("vbgm serve: stopping")
        app.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
        engine.close()
