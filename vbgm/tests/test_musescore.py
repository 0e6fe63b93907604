"""A notation program reads the MIDI vbgm writes: Debian's MuseScore 3, headless, converts every
generated file (the mix and each stem) to MusicXML with the same number of notes per part.

MuseScore's own limits, and how the count allows for them: it writes a note that crosses a bar
line or has no single note value (e.g. 5 sixteenths) as tied notes, so a note with a tie "stop"
is a continuation, not a new note; drums become one percussion staff (voices, not tracks), which
keeps their count; MIDI markers (cuts, sections) are not imported by MuseScore 3 at all, so they
are checked in test_stems.py on the MIDI itself. Nothing else differed in these files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import mido
import pytest
import symusic
from vbgm.cli import main
from vbgm.midi import key_signature_sharps
from vbgm.timecode import smpte_event, with_smpte_offset


@pytest.fixture(scope="module")
def mscore() -> str:
    """The MuseScore 3 program; skipped when absent, an error in CI (CI=true)."""
    for name in ("mscore3", "musescore3", "mscore"):
        if shutil.which(name):
            return name
    if os.environ.get("CI") == "true":
        pytest.fail("MuseScore not installed (Debian: musescore3), and CI=true")
    pytest.skip("MuseScore not installed (Debian: musescore3)")


def _convert(mscore: str, midis: list[Path]) -> list[Path]:
    """MusicXML of each MIDI file, by one headless MuseScore batch job."""
    job = [{"in": str(m), "out": str(m.with_suffix(".musicxml"))} for m in midis]
    job_file = midis[0].parent / "job.json"
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run([mscore, "-j", str(job_file)], env=env, check=True, capture_output=True,
                   timeout=120)
    return [Path(j["out"]) for j in job]


def _xml_notes(path: Path) -> tuple[list[int], set[int]]:
    """(notes per part, tied continuations counted once; the key signatures' fifths)."""
    root = ET.parse(path).getroot()
    counts = []
    for part in root.iter("part"):
        counts.append(sum(1 for n in part.iter("note") if n.find("rest") is None and not any(
            t.get("type") == "stop" for t in n.findall("tie"))))
    fifths = {int(f.text) for f in root.iter("fifths")}
    return counts, fifths


def _midi_notes(path: Path) -> list[int]:
    return [t.note_num() for t in symusic.Score(str(path)).tracks]


def test_musescore_reads_every_generated_file(mscore, video_root, tmp_path):
    out, stems = tmp_path / "bikes.mp4", tmp_path / "stems"
    assert main(["generate", str(video_root / "bikes.mp4"), "-o", str(out), "--stems",
                 str(stems), "--key", "D major", "--quiet", "--seed", "3"]) == 0
    # bikes.mp4's cuts, setting the tempo, put it after a pickup: a short first bar.
    sigs = symusic.Score(str(out.with_suffix(".mid"))).time_signatures
    assert sigs[0].time == 0 and sigs[0].numerator < 4 and sigs[1].numerator == 4
    free = tmp_path / "free.mid"  # longer, all five instruments, many long (tied) notes
    assert main(["compose", "--seconds", "24", "--tempo", "120", "-o", str(free), "--quiet",
                 "--seed", "3"]) == 0
    loop = tmp_path / "loop.mid"  # notes cut at the loop's end, a V7 last bar
    assert main(["compose", "--loop", "--bars", "4", "-o", str(loop), "--quiet"]) == 0
    midis = [out.with_suffix(".mid"), free, loop, *sorted(stems.glob("*.mid"))]
    assert len(midis) >= 4
    for midi, xml in zip(midis, _convert(mscore, midis)):
        counts, fifths = _xml_notes(xml)
        assert counts == _midi_notes(midi), midi.name
        if midi.parent == stems or midi.name == "bikes.mid":
            assert fifths == {key_signature_sharps(2)}  # D major: two sharps


def test_midi_carries_the_video_start_offset(video_root, tmp_path):
    out = tmp_path / "clip.mp4"
    assert main(["generate", str(video_root / "carphone_pristine.mp4"), "-o", str(out),
                 "--quiet", "--instruments", "piano"]) == 0
    first = mido.MidiFile(out.with_suffix(".mid")).tracks[0]  # mido raises on bad data bytes
    assert first[0].type == "smpte_offset" and first[0].time == 0
    assert (first[0].frame_rate, first[0].hours, first[0].minutes, first[0].seconds,
            first[0].frames) == (29.97, 0, 0, 0, 0)  # a 29.97 fps clip starting at its first frame


def test_smpte_offset_bytes():
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 100.0))
    data = with_smpte_offset(score.dumps_midi(), 3600 + 62 + 13 / 25, 25.0)
    msg = mido.MidiFile(file=__import__("io").BytesIO(data)).tracks[0][0]
    assert (msg.type, msg.frame_rate, msg.hours, msg.minutes, msg.seconds, msg.frames) == (
        "smpte_offset", 25, 1, 1, 2, 13)
    assert symusic.Score.from_midi(data).tempos[0].qpm == pytest.approx(100.0)
    assert smpte_event(0.0, 29.97)[4] >> 5 == 2  # drop-frame code
    with pytest.raises(ValueError):
        with_smpte_offset(b"RIFF" + bytes(30), 0.0, 25.0)
