"""`vbgm generate DIR -o OUT --workers N`: the same music as one process, a bad video reported
while the others are scored."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from vbgm.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
CLIPS = ("carphone_pristine.mp4", "bikes.mp4")  # 4 s and 10 s


@pytest.fixture
def clips(video_root: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in CLIPS:
        shutil.copyfile(video_root / name, folder / name)
    return folder


def test_two_workers_write_what_one_process_writes(clips: Path, tmp_path: Path, capsys) -> None:
    assert main(["generate", str(clips), "-o", str(tmp_path / "one"), "--quiet"]) == 0
    assert main(["generate", str(clips), "-o", str(tmp_path / "two"), "--quiet",
                 "--workers", "2"]) == 0
    assert "2 videos on 2 worker processes" in capsys.readouterr().out
    for name in CLIPS:
        stem = Path(name).stem
        one, two = tmp_path / "one" / f"{stem}.mid", tmp_path / "two" / f"{stem}.mid"
        assert one.read_bytes() == two.read_bytes(), name  # same seed, same music
        assert (tmp_path / "two" / f"{stem}.mp4").stat().st_size > 10_000


def test_a_bad_video_fails_alone(clips: Path, tmp_path: Path, capsys) -> None:
    (clips / "broken.mp4").write_text("not a video")
    assert main(["generate", str(clips), "-o", str(tmp_path / "out"), "--quiet",
                 "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "1 of 3 videos failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "bikes.mid", "bikes.mp4", "carphone_pristine.mid", "carphone_pristine.mp4"]
    assert main(["generate", str(clips), "-o", str(tmp_path / "x"), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_a_fresh_command_analyses_the_largest_video_ahead_without_torch(
        clips: Path, tmp_path: Path) -> None:
    """As a user runs it (a fresh process): the command itself never imports torch, the largest
    video is analysed while the workers start (here a damaged one: its error is reported and the
    others are scored), and the music equals one process's."""
    assert main(["generate", str(clips), "-o", str(tmp_path / "one"), "--quiet"]) == 0
    (clips / "damaged.mp4").write_bytes(b"\0" * 2_000_000)  # the largest file
    script = ("import sys; from vbgm.cli import main; "
              f"code = main(['generate', {str(clips)!r}, '-o', {str(tmp_path / 'two')!r}, "
              "'--quiet', '--workers', '2']); print('torch' in sys.modules); sys.exit(code)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2, run.stderr
    assert run.stdout.splitlines()[-1] == "False"  # the command process never imported torch
    assert "damaged.mp4" in run.stderr and "1 of 3 videos failed" in run.stderr
    for name in CLIPS:
        stem = Path(name).stem
        one, two = tmp_path / "one" / f"{stem}.mid", tmp_path / "two" / f"{stem}.mid"
        assert one.read_bytes() == two.read_bytes(), name
