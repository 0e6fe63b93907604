"""The Python API `vbgm.score_video`: music for a real clip in one call, and bad input refused
with one line naming the file, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from vbgm.errors import VbgmError

import vbgm

CLIP = "carphone_pristine.mp4"  # 4.0 s, 176x144: the cheapest real clip


def _durations(path: Path) -> dict[str, float]:
    import av

    with av.open(str(path)) as c:
        return {s.type: float(s.duration * s.time_base) for s in c.streams
                if s.duration is not None}


def test_score_video_writes_the_video_with_music_and_the_midi(video_root, tmp_path, one_thread):
    clip = video_root / CLIP
    out = tmp_path / "clip_music.mp4"
    result = vbgm.score_video(clip, out, instruments="drums,piano,bass", key="D minor", seed=3,
                              wav=tmp_path / "clip.wav")
    assert result.video == out and result.midi == out.with_suffix(".mid")
    assert result.key == "D minor" and result.seconds > 3.5
    src, got = _durations(clip)["video"], _durations(out)
    assert abs(got["video"] - src) <= 0.1 and abs(got["audio"] - src) <= 0.1, (got, src)
    import symusic

    score = symusic.Score(str(result.midi))
    names = {t.name.lower() for t in score.tracks if len(t.notes)}
    assert names and names <= {"drums", "piano", "bass"}, names
    assert (tmp_path / "clip.wav").stat().st_size > 100_000
    with pytest.raises(VbgmError, match="already exists"):  # no silent overwrite
        vbgm.score_video(clip, out)


def test_bad_input_is_one_error_naming_the_file_and_nothing_is_written(video_root, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("a text file with a video's name\n" * 20)
    with pytest.raises(VbgmError, match="notes.mp4"):
        vbgm.score_video(fake, tmp_path / "out.mp4")
    with pytest.raises(VbgmError, match="unknown genre 'polka'"):
        vbgm.score_video(video_root / CLIP, tmp_path / "out.mp4", genre="polka")
    with pytest.raises(VbgmError, match="no instrument"):
        vbgm.score_video(video_root / CLIP, tmp_path / "out.mp4", instruments="")
    with pytest.raises(VbgmError, match="out.wav: the output must end in"):
        vbgm.score_video(video_root / CLIP, tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]
