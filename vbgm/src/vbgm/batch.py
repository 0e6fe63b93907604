"""Scoring many videos: one after another in this process, or in N worker processes.

Each worker loads the model once and scores whole videos (`vbgm.pipeline.score_video`, one
transaction each), with one torch thread, so N workers use N cores without oversubscribing
them. Results come back in the order the videos finish; a failed video is an error message, not
a stopped batch. Ctrl-C or SIGTERM reach the workers too (same process group); each one's
transaction removes its temporaries, and the pool is shut down without waiting for queued
videos.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vbgm.errors import VbgmError

if TYPE_CHECKING:
    from vbgm.outputs import Outputs
    from vbgm.pipeline import Music
    from vbgm.video import AnalysisAhead

# Modules a worker needs (the pipeline and what it imports on first use), imported once by the
# fork server the workers are forked from.
WORKER_PRELOAD = ["vbgm.pipeline", "vbgm.video", "vbgm.render", "vbgm.mux"]


@dataclass
class Done:
    """One video's outcome: its music, or the one-line error that stopped it."""

    index: int
    video: Path
    out: Outputs
    music: Music | None = None
    error: str | None = None


def _run_one(model, stats, i: int, video: Path, out: Outputs, options: dict[str, Any],
             ahead: AnalysisAhead | None = None) -> Done:
    from vbgm.pipeline import score_video

    try:
        if ahead is not None:  # analysed while this process started up
            options = {**options, "analysis": ahead.result(), "analysis_s": ahead.seconds}
        music = score_video(video, out, model, stats=stats, **options)
    except VbgmError as exc:
        return Done(i, video, out, error=str(exc))
    return Done(i, video, out, music=music)


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


def _work(i: int, video: Path, out: Outputs, options: dict[str, Any]) -> Done:
    return _run_one(_WORKER["model"], _WORKER["stats"], i, video, out, options)


def _size(path: Path) -> int:
    """Bytes of `path`, 0 when it cannot be read (its job then reports why)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
    ahead: the first video's analysis, started before the model is loaded (one process only).
    """
    if workers < 1:
        raise VbgmError(f"--workers must be at least 1, got {workers}")
    jobs = list(enumerate(zip(videos, outputs), 1))
    if workers == 1 or len(jobs) == 1:
        from vbgm.pipeline import load_model_and_stats

        model, stats = load_model_and_stats(checkpoint)
        for i, (video, out) in jobs:
            log(f"[{i}/{len(jobs)}] {video}")
            yield _run_one(model, stats, i, video, out, options, ahead if i == 1 else None)
        return
    if ahead is not None:
        ahead.cancel()
    quiet = {**options, "progress": False, "log": _silent}
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=start_worker_server(),
                               initializer=_init_worker,
                               initargs=(str(checkpoint) if checkpoint else None,))
    try:
        # Largest files first (a proxy for the work): the last videos are short, so no worker
        # idles long at the end while another finishes a long one.
        by_size = sorted(jobs, key=lambda job: -_size(job[1][0]))
        pending = {pool.submit(_work, i, video, out, quiet) for i, (video, out) in by_size}
        log(f"{len(jobs)} videos on {min(workers, len(jobs))} worker processes")
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
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
