"""Scoring many videos: one after another in this process, or in N worker processes.

Each worker loads the model once and scores whole videos (`vbgm.pipeline.score_video`, one
transaction each), with one torch thread, so N workers use N cores without oversubscribing
them. Results come back in the order the videos finish; a failed video is an error message, not
a stopped batch. Ctrl-C or SIGTERM reach the workers too (same process group); each one's
transaction removes its temporaries, and the pool is shut down without waiting for queued
videos.

With workers, this process never imports torch (nothing it handles needs it: `Done` carries a
`Song`): while the workers' fork server imports the pipeline, its own core analyses the longest
video (`first_video`, a `video.AnalysisAhead`), which a worker then only generates, renders and
muxes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vbgm.errors import VbgmError

if TYPE_CHECKING:
    from vbgm.outputs import Outputs
    from vbgm.pipeline import Music
    from vbgm.song import Song
    from vbgm.video import AnalysisAhead

# Modules a worker needs (the pipeline and what it imports on first use), imported once by the
# fork server the workers are forked from.
WORKER_PRELOAD = ["vbgm.pipeline", "vbgm.video", "vbgm.render", "vbgm.mux"]


@dataclass
class Done:
    """One video's outcome: its song, tempo and stage timings (`pipeline.Music`'s, without the
    candidates' tokens), or the one-line error that stopped it."""

    index: int
    video: Path
    out: Outputs
    song: Song | None = None
    tempo_bpm: float = 0.0
    seconds: float = 0.0  # the music's length
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(cls, index: int, video: Path, out: Outputs, music: Music) -> Done:
        return cls(index, video, out, song=music.song, tempo_bpm=music.tempo_bpm,
                   seconds=music.seconds, timings=music.timings)


def _with_analysis(options: dict[str, Any], ahead: AnalysisAhead) -> dict[str, Any]:
    """`options` with the video's analysis made ahead (`ahead.result()`; its VbgmError raised)."""
    return {**options, "analysis": ahead.result(), "analysis_s": ahead.seconds}


def _run_one(model, stats, i: int, video: Path, out: Outputs, options: dict[str, Any],
             ahead: AnalysisAhead | None = None) -> Done:
    from vbgm.pipeline import score_video

    try:
        if ahead is not None:  # analysed while this process started up
            options = _with_analysis(options, ahead)
        music = score_video(video, out, model, stats=stats, **options)
    except VbgmError as exc:
        return Done(i, video, out, error=str(exc))
    return Done.of(i, video, out, music)


def _silent(line: str) -> None:
    """A worker's log: nothing (lines of several videos would interleave)."""


# The model of a worker process, loaded once by `_init_worker`.
_WORKER: dict[str, Any] = {}


def _init_worker(checkpoint: str | None) -> None:
    import torch

    from vbgm.pipeline import load_model_and_stats

    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass
    _WORKER["model"], _WORKER["stats"] = load_model_and_stats(checkpoint)


# Workers share the cores: one decoder thread each (see `AnalysisConfig.decode_threads`); so
# does the analysis made ahead while they start.
SHARED_CORE_DECODE_THREADS = 1


def _work(i: int, video: Path, out: Outputs, options: dict[str, Any]) -> Done:
    from vbgm.transaction import stops_raise
    from vbgm.video import AnalysisConfig

    config = options.get("analysis_config") or AnalysisConfig()
    options = {**options,
               "analysis_config": replace(config, decode_threads=SHARED_CORE_DECODE_THREADS)}
    with stops_raise():  # Ctrl-C and SIGTERM reach the workers too: end the video cleanly
        return _run_one(_WORKER["model"], _WORKER["stats"], i, video, out, options)


def _started() -> None:
    """A job that only makes the pool start a worker process (it starts one per job)."""


def work_estimate(path: Path) -> float:
    """How long a video takes to score, relatively: its length in seconds, from the container's
    header (a few ms; a video's analysis, music and rendering all grow with it); 0 when it
    cannot be read (its job then reports why, quickly). Not its size in bytes: bikes.mp4 is the
    smallest of the real clips and the second longest to score (10 s, 1.1 s of work; the 4 s
    carphone clip, 15 % larger, takes 0.5 s)."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / av.time_base
            return max((float(s.duration * s.time_base) for s in container.streams
                        if s.duration is not None and s.time_base is not None), default=0.0)
    except (OSError, av.error.FFmpegError, ValueError):
        return 0.0


def first_video(videos: list[Path], workers: int) -> Path:
    """The video scored first (the one to analyse ahead): the first given in one process, the
    longest with workers (they take the longest first, `work_estimate`)."""
    return videos[0] if workers == 1 or len(videos) == 1 else max(videos, key=work_estimate)


def start_worker_server() -> BaseContext:
    """The context worker processes come from, its fork server started now (idempotent).

    Workers are not forked from this process (a fork of a process whose torch/OpenMP threads
    already ran can hang) but from a fork server that imported the pipeline once and ran
    nothing, so each starts with torch imported (spawned, each paid ~1 s of imports on a busy
    CPU). Call it early, before this process imports torch, and the two imports overlap."""
    from multiprocessing import forkserver

    context = get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    forkserver.ensure_running()
    return context


def score_videos(videos: list[Path], outputs: list[Outputs], options: dict[str, Any],
                 checkpoint: str | os.PathLike[str] | None = None, workers: int = 1,
                 log: Callable[[str], None] = print,
                 ahead: AnalysisAhead | None = None) -> Iterator[Done]:
    """Score every video into its outputs; yields each `Done` as it finishes.

    options: `score_video`'s keywords (request, config, tempo, seed, ...); with workers > 1
    progress bars are off and each video's log lines are left out (they would interleave).
    ahead: the analysis of `first_video`, started before the model is loaded.
    """
    if workers < 1:
        raise VbgmError(f"--workers must be at least 1, got {workers}")
    jobs = list(enumerate(zip(videos, outputs), 1))
    if workers == 1 or len(jobs) == 1:
        from vbgm.pipeline import load_model_and_stats

        model, stats = load_model_and_stats(checkpoint)
        for i, (video, out) in jobs:
            log(f"[{i}/{len(jobs)}] {video}")
            mine = ahead if ahead is not None and ahead.path == video else None
            yield _run_one(model, stats, i, video, out, options, mine)
        return
    yield from _score_in_workers(jobs, options, checkpoint, min(workers, len(jobs)), log, ahead)


def _score_in_workers(jobs: list[tuple[int, tuple[Path, Outputs]]], options: dict[str, Any],
                      checkpoint: str | os.PathLike[str] | None, n_workers: int,
                      log: Callable[[str], None], ahead: AnalysisAhead | None) -> Iterator[Done]:
    """`score_videos` with `n_workers` processes. Longest videos first (`work_estimate`): the
    last ones are short, so no worker idles long at the end while another finishes a long one.
    No more videos are handed out than there are workers, and while the longest one is analysed
    ahead, one worker's place is kept for it (that analysis uses the place's core)."""
    quiet = {**options, "progress": False, "log": _silent}
    estimates = {video: work_estimate(video) for _, (video, _) in jobs}
    queue = sorted(jobs, key=lambda job: -estimates[job[1][0]])
    held = next((job for job in queue if ahead is not None and job[1][0] == ahead.path), None)
    if held is not None:
        queue.remove(held)
    elif ahead is not None:  # not one of these videos
        ahead.cancel()
    pool = ProcessPoolExecutor(n_workers, mp_context=start_worker_server(),
                               initializer=_init_worker,
                               initargs=(str(checkpoint) if checkpoint else None,))
    running: set[Future] = set()
    try:
        for _ in range(n_workers):  # every worker starts now, the kept place's included
            pool.submit(_started)
        log(f"{len(jobs)} videos on {n_workers} worker processes")
        while queue or running or held:
            if held is not None and (ahead.ready() or not (queue or running)):
                i, (video, out) = held
                held = None
                try:
                    running.add(pool.submit(_work, i, video, out, _with_analysis(quiet, ahead)))
                except VbgmError as exc:  # the analysis failed
                    log(f"[{i}/{len(jobs)}] {video}")
                    yield Done(i, video, out, error=str(exc))
            while queue and len(running) < n_workers - (held is not None):
                i, (video, out) = queue.pop(0)
                running.add(pool.submit(_work, i, video, out, quiet))
            if not running:
                continue
            # While the analysis ahead runs, look at it every 20 ms.
            finished, running = wait(running, timeout=0.02 if held else None,
                                     return_when=FIRST_COMPLETED)
            for f in finished:
                try:
                    done = f.result()
                except BrokenProcessPool as exc:
                    raise VbgmError(f"a worker process died ({exc}); the videos it had left "
                                    "are not scored") from exc
                log(f"[{done.index}/{len(jobs)}] {done.video}")
                yield done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
