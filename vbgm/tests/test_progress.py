"""Progress output: throttled bars ending at 100 % on a terminal, one line per stage elsewhere."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vbgm.progress import MIN_INTERVAL, stage


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, to see what a bar draws."""

    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_stage_is_one_line_clamped_to_its_total() -> None:
    out = io.StringIO()
    with stage("generate", 100, "sixteenth", stream=out) as s:
        for _ in range(5000):  # far more updates than the total: no overshoot
            s.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "\r" not in out.getvalue()
    assert lines[0].startswith("generate: 100 sixteenths in ")


def test_a_stage_left_early_ends_at_100_percent_and_a_failed_one_says_stopped() -> None:
    out = io.StringIO()
    with stage("decode a.mp4", 217, "frame", stream=out) as s:
        s.update(200)  # an estimated total the decoder fell short of
    with_error = io.StringIO()
    try:
        with stage("decode b.mp4", 217, "frame", stream=with_error) as s:
            s.update(50)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert out.getvalue().startswith("decode a.mp4: 217 frames in ")
    assert with_error.getvalue().startswith("decode b.mp4: 50 of 217 frames in ")
    assert "(stopped)" in with_error.getvalue()


def test_disabled_stage_writes_nothing() -> None:
    out = FakeTerminal()
    with stage("x", 10, stream=out, enabled=False) as s:
        s.update(10)
    assert out.getvalue() == ""


def test_on_a_terminal_redraws_are_throttled_and_the_bar_ends_at_100_percent() -> None:
    out = FakeTerminal()
    start = time.perf_counter()
    with stage("generate", 10_000, "sixteenth", stream=out) as s:
        for _ in range(9_000):
            s.update(1)
            time.sleep(0.0001)
    took = time.perf_counter() - start
    frames = [f for f in out.getvalue().split("\r") if f.strip()]
    assert len(frames) <= took / MIN_INTERVAL + 3  # start, throttled redraws, final
    assert "100%" in frames[-1] and "10000/10000" in frames[-1]


def test_generate_log_off_a_terminal_is_a_handful_of_lines(video_root: Path,
                                                          tmp_path: Path) -> None:
    """`vbgm generate` with stderr to a file: a line per stage, no carriage-return redraws."""
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.run(
            [sys.executable, "-m", "vbgm.cli", "generate",
             str(video_root / "carphone_pristine.mp4"), "-o", str(tmp_path / "out.mp4")],
            stdout=subprocess.DEVNULL, stderr=err, check=False, timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "\r" not in text
    lines = text.splitlines()
    assert 2 <= len(lines) <= 5, text
    assert lines[0].startswith("decode carphone_pristine.mp4: ")
    assert any(line.startswith("generate: ") for line in lines)
    assert (tmp_path / "out.mp4").is_file()


def test_prepare_log_off_a_terminal_is_one_line(midi_root: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`vbgm prepare` with stderr captured (not a terminal): one stage line, no redraws."""
    from vbgm.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in sorted((midi_root / "freedoom").rglob("*.mid"))[:3]:
        shutil.copy(f, corpus / f.name)
    main(["prepare", str(corpus), "-o", str(tmp_path / "ds"), "--workers", "1"])
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line for line in err.splitlines() if line.startswith("prepare: ")] == [
        line for line in err.splitlines() if not line.startswith("vbgm: warning")]
    assert err.startswith("prepare: 1 folder")
