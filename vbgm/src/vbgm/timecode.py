"""The video's start offset in the MIDI: a SMPTE-offset meta event (FF 54) at the start of the
tempo track, so that a DAW that syncs to the picture's timecode places bar 1 on the video's
first frame.

The offset is the video's start timecode when it carries one (the `timecode` tag that FFmpeg
reports for a QuickTime/MP4 tmcd track or an MXF/Matroska tag, e.g. "01:00:00:00"), else the
presentation time of its first frame (0 for most files). symusic cannot write this event, so it
is inserted into the MIDI bytes that symusic dumps.
"""

from __future__ import annotations

import os
import re

from vbgm.errors import VbgmError

# SMPTE frame rates MIDI can name, and their 2-bit codes in the hours byte.
SMPTE_RATES: dict[float, int] = {24.0: 0, 25.0: 1, 29.97: 2, 30.0: 3}
_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})[:;.](\d{2})$")


def smpte_rate(fps: float) -> float:
    """The SMPTE rate (24, 25, 29.97 or 30) closest to a video's frame rate (25 if unknown)."""
    if not fps or fps <= 0:
        return 25.0
    return min(SMPTE_RATES, key=lambda r: abs(r - fps))


def video_start(path: str | os.PathLike[str]) -> tuple[float, float]:
    """(start offset in seconds, SMPTE rate) of a video: its start timecode if tagged, else the
    time of its first frame."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise VbgmError(f"{path}: has no video stream")
            v = c.streams.video[0]
            rate = smpte_rate(float(v.average_rate or v.guessed_rate or 25))
            tags = [v.metadata.get("timecode"), c.metadata.get("timecode")]
            tags += [s.metadata.get("timecode") for s in c.streams if s.type == "data"]
            for tag in tags:
                m = _TIMECODE.match(tag.strip()) if tag else None
                if m:
                    h, mi, s, f = map(int, m.groups())
                    return h * 3600 + mi * 60 + s + f / rate, rate
            start = float(v.start_time * v.time_base) if v.start_time is not None else 0.0
            return max(start, 0.0), rate
    except av.error.FFmpegError as exc:
        raise VbgmError(f"{path}: cannot read this video ({exc})") from exc


def smpte_event(seconds: float, rate: float) -> bytes:
    """The FF 54 meta event (with a zero delta time) for an offset in seconds at a SMPTE rate;
    hours wrap at 24 as the format requires."""
    if rate not in SMPTE_RATES:
        raise ValueError(f"not a SMPTE rate: {rate}")
    fps = round(rate)  # 29.97 counts 30 frame numbers per second
    total = max(seconds, 0.0) * (rate if rate != 29.97 else 30.0)
    frames = int(total)
    sub = min(99, int(round((total - frames) * 100)))
    h, rest = divmod(frames, 3600 * fps)
    mi, rest = divmod(rest, 60 * fps)
    s, f = divmod(rest, fps)
    return bytes([0x00, 0xFF, 0x54, 0x05, (SMPTE_RATES[rate] << 5) | (h % 24), mi, s, f, sub])


def with_smpte_offset(midi: bytes, seconds: float, rate: float) -> bytes:
    """Standard MIDI file bytes with a SMPTE offset inserted at the start of the first track
    (the tempo track of format 1 files, the only one of format 0); any earlier one is kept
    after it, so ours is the one readers take (the first). Raises ValueError on bytes that are
    not a MIDI file."""
    if len(midi) < 22 or midi[:4] != b"MThd":
        raise ValueError("not a MIDI file")
    at = 8 + int.from_bytes(midi[4:8], "big")
    if midi[at: at + 4] != b"MTrk":
        raise ValueError("no track after the header")
    length = int.from_bytes(midi[at + 4: at + 8], "big")
    event = smpte_event(seconds, rate)
    return (midi[:at + 4] + (length + len(event)).to_bytes(4, "big") + event
            + midi[at + 8:])
