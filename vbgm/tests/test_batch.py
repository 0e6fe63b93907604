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


class _LateAnalysis:
    """An analysis made ahead that never reports ready: the scheduler must score the other
    videos first and then wait for it (`result`), not spin or drop it."""

    def __init__(self, path: Path) -> None:
        from vbgm.video import analyze

        self.path, self.seconds, self.waited = path, 0.0, 0
        self._analysis = analyze(path)

    def ready(self) -> bool:
        return False

    def result(self):
        self.waited += 1
        return self._analysis

    def cancel(self) -> None:
        pass


def test_the_video_analysed_ahead_is_scored_last_when_its_analysis_is_late(
        clips: Path, tmp_path: Path) -> None:
    from vbgm.batch import first_video, score_videos
    from vbgm.outputs import Outputs

    videos = sorted(clips.iterdir())
    ahead = _LateAnalysis(first_video(videos, 2))

    def outputs(folder: str) -> list[Outputs]:
        return [Outputs(video=tmp_path / folder / f"{v.stem}.mp4",
                        midi=tmp_path / folder / f"{v.stem}.mid") for v in videos]

    done = list(score_videos(videos, outputs("two"), {}, workers=2, log=lambda line: None,
                             ahead=ahead))
    assert ahead.waited == 1 and all(d.error is None for d in done)
    assert done[-1].video == ahead.path  # the others did not wait for it
    one = list(score_videos(videos, outputs("one"), {}, workers=1, log=lambda line: None))
    assert all(d.error is None for d in one)
    for v in videos:
        assert (tmp_path / "one" / f"{v.stem}.mid").read_bytes() == \
            (tmp_path / "two" / f"{v.stem}.mid").read_bytes(), v.name


def test_workers_take_the_longest_videos_first(clips: Path, tmp_path: Path) -> None:
    """The work estimate is a video's length, not its size: bikes.mp4 (10 s) is the smaller file
    but twice as long as carphone_pristine.mp4 (4 s); an unreadable file counts as no work."""
    from vbgm.batch import first_video, work_estimate

    bikes, carphone = clips / "bikes.mp4", clips / "carphone_pristine.mp4"
    assert bikes.stat().st_size < carphone.stat().st_size
    assert work_estimate(bikes) == pytest.approx(10.0, abs=0.1)
    assert work_estimate(carphone) == pytest.approx(4.0, abs=0.1)
    assert first_video([carphone, bikes], workers=2) == bikes
    assert first_video([carphone, bikes], workers=1) == carphone  # one process: in order
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    assert work_estimate(junk) == 0.0
    assert work_estimate(tmp_path / "missing.mp4") == 0.0
