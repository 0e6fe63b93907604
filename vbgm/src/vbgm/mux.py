"""Put rendered music on a video: PyAV, one pass, output written atomically.

The video stream is copied packet for packet when the output container can hold its codec (no
quality loss, fast); otherwise it is re-encoded to H.264. The music becomes an AAC stream that
lasts exactly as long as the video (trimmed with a short fade, or padded with silence). With
`keep_audio` the original sound is decoded, resampled and mixed under the music; when it cannot
be decoded (a damaged packet, an unknown codec) the music goes on alone, with a one-line warning.

Errors name the file at fault: "cannot write OUT: no space left on device" for the output,
"IN: cannot read this video (...)" for the input.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vbgm.atomic import atomic_path
from vbgm.duck import DuckConfig
from vbgm.duck import duck as duck_music
from vbgm.errors import VbgmError, WriteError, reason
from vbgm.formats import CONTAINERS
from vbgm.render import BLOCK, AudioFile, db_to_gain, fade, limit_blocks, limit_peaks

# The video codecs each output container (vbgm.formats.CONTAINERS) can take by stream copy.
COPYABLE: dict[str, frozenset[str]] = {
    "mp4": frozenset({"h264", "hevc", "mpeg4", "av1", "vp9"}),
    "mov": frozenset({"h264", "hevc", "mpeg4", "mjpeg", "prores"}),
    "matroska": frozenset({"h264", "hevc", "mpeg4", "av1", "vp8", "vp9", "mjpeg", "theora"}),
}
AAC_FRAME = 1024  # samples per AAC frame
AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200,
                       96000})
TRIM_FADE_S = 0.05  # fade-out applied where the music is cut at the video's end
# Errors that can only come from writing the output (whatever the call that raised them).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class _AudioUnreadable(Exception):
    """The input's own sound failed to decode (`keep_audio`): the music is muxed without it."""

    def __init__(self, time_s: float, cause: BaseException) -> None:
        super().__init__(f"at {time_s:.1f} s: {reason(cause)}")


@dataclass
class MuxConfig:
    """Encoding settings. reencode forces H.264 re-encoding even when the video stream could be
    copied; crf/preset apply only when the video is re-encoded."""

    music_gain_db: float = 0.0
    original_gain_db: float = -12.0
    ceiling_db: float = -1.0
    audio_bitrate: int = 192_000
    aac_coder: str = "fast"  # FFmpeg's AAC coder: "fast" is ~2x quicker than "twoloop" at 192k
    crf: int = 20
    preset: str = "superfast"  # 1.6x faster than veryfast for ~40 % more bytes at the crf
    reencode: bool = False


@dataclass
class MuxResult:
    """What mux() did: whether the video was copied, its codec, and the duration it matched."""

    video_copied: bool
    video_codec: str
    duration_s: float
    audio_samples: int
    kept_original_audio: bool
    ducking: tuple[np.ndarray, np.ndarray] | None = None  # (times s, music gain dB) when ducked


@dataclass
class _VideoTiming:
    start_s: float  # presentation time of the first frame
    duration_s: float  # first frame start to last frame end
    codec: str
    rate: Fraction


def _stereo(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] not in (1, 2):
        raise ValueError(f"audio must be (n,), (n, 1) or (n, 2), got {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio


def fit_to_length(audio: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """Pad with silence or trim to exactly `n` samples; a trim ends with a short fade-out."""
    if len(audio) >= n:
        trimmed = len(audio) > n
        audio = audio[:n]
        return fade(audio, sample_rate, 0.0, TRIM_FADE_S) if trimmed else audio
    return np.concatenate([audio, np.zeros((n - len(audio), audio.shape[1]), np.float32)])


def _scan(container: av.container.InputContainer, video: av.VideoStream,
          audio: av.AudioStream | None, sample_rate: int
          ) -> tuple[_VideoTiming, np.ndarray | None, float]:
    """One demux pass: the video's exact time span, and (if `audio`) its decoded sound as float
    stereo at `sample_rate` with the time (s) of its first sample."""
    tb = video.time_base
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    frame_ticks = 1 / (rate * tb)
    start = end = None
    chunks: list[np.ndarray] = []
    audio_start = 0.0
    resampler = av.AudioResampler(format="flt", layout="stereo", rate=sample_rate)
    streams = [video] + ([audio] if audio is not None else [])
    for packet in container.demux(*streams):
        if packet.stream.type == "video":
            if packet.pts is None or packet.size == 0:
                continue
            duration = packet.duration or frame_ticks
            start = packet.pts if start is None else min(start, packet.pts)
            end = packet.pts + duration if end is None else max(end, packet.pts + duration)
            continue
        try:
            for frame in packet.decode():
                if not chunks and frame.pts is not None:
                    audio_start = float(frame.pts * frame.time_base)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, 2))
        except (av.error.FFmpegError, ValueError) as exc:
            at = packet.pts * packet.time_base if packet.pts is not None else 0
            raise _AudioUnreadable(float(at), exc) from exc
    if audio is not None:
        try:
            chunks.extend(out.to_ndarray().reshape(-1, 2) for out in resampler.resample(None))
        except (av.error.FFmpegError, ValueError) as exc:
            raise _AudioUnreadable(float(end * tb) if end is not None else 0.0, exc) from exc
    if start is None:
        raise ValueError("no video frames")
    timing = _VideoTiming(start_s=float(start * tb), duration_s=float((end - start) * tb),
                          codec=video.codec_context.name, rate=Fraction(rate))
    original = np.concatenate(chunks).astype(np.float32) if chunks else None
    return timing, original, audio_start


def _scan_file(path: Path, keep_audio: bool, sample_rate: int
               ) -> tuple[_VideoTiming, np.ndarray | None, float]:
    """`_scan` of the file at `path` (its first audio stream only with `keep_audio`)."""
    with av.open(str(path)) as src:
        if not src.streams.video:
            raise VbgmError(f"{path}: has no video stream")
        ain = src.streams.audio[0] if keep_audio and src.streams.audio else None
        return _scan(src, src.streams.video[0], ain, sample_rate)


def _is_write_error(exc: BaseException, out_path: Path) -> bool:
    """Whether `exc` (raised while muxing) is a failure to write the output."""
    if not isinstance(exc, OSError):
        return False
    name = getattr(exc, "filename", None)
    if name is not None and Path(os.fsdecode(name)).parent.resolve() == out_path.parent.resolve():
        return Path(os.fsdecode(name)).name.startswith((".", out_path.name))
    return exc.errno in WRITE_ERRNOS


def _warn(message: str) -> None:
    """Default `warn` of mux(): one line on stderr."""
    print(f"vbgm: warning: {message}", file=sys.stderr)


def _audio_frames(audio: np.ndarray, sample_rate: int, pts0: int) -> Iterator[av.AudioFrame]:
    """Planar float AAC-sized frames of `audio`, pts counted in samples from `pts0`."""
    for i in range(0, len(audio), AAC_FRAME):
        chunk = np.ascontiguousarray(audio[i:i + AAC_FRAME].T)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = sample_rate
        frame.pts = pts0 + i
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def _open_video_stream(out: av.container.OutputContainer, src: av.VideoStream, copy: bool,
                       cfg: MuxConfig) -> av.VideoStream:
    if copy:
        return out.add_stream_from_template(src)
    stream = out.add_stream("libx264", rate=src.average_rate or src.guessed_rate or 25)
    stream.width = src.codec_context.width // 2 * 2  # yuv420p needs even sizes
    stream.height = src.codec_context.height // 2 * 2
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = src.time_base
    stream.options = {"crf": str(cfg.crf), "preset": cfg.preset}
    return stream


def mux(video_in: str | os.PathLike[str], audio: np.ndarray | AudioFile, sample_rate: int,
        out_path: str | os.PathLike[str], keep_audio: bool = False,
        music_gain_db: float | None = None, original_gain_db: float | None = None,
        config: MuxConfig | None = None, warn: Callable[[str], None] = _warn,
        duck: DuckConfig | None = None) -> MuxResult:
    """Write `out_path`: the video of `video_in` with `audio` ((n, 2) or (n,) float, at
    `sample_rate`) as its sound track, trimmed or padded to the video's duration. An
    `AudioFile` is read, limited and encoded block by block (memory flat in the length) unless
    `keep_audio` needs it whole.

    keep_audio mixes the input's own sound (at original_gain_db) under the music (at
    music_gain_db); the mix is peak-limited so it cannot clip. The output suffix picks the
    container (.mp4, .m4v, .mov, .mkv). Never overwrites the input; on failure an existing
    output is left untouched. When the original sound cannot be decoded, `warn` gets one line
    and the music is muxed alone.

    duck (with keep_audio): lower the music where the original sound is loud (`vbgm.duck`); the
    curve applied comes back in `MuxResult.ducking`.
    """
    cfg = config or MuxConfig()
    music_gain_db = cfg.music_gain_db if music_gain_db is None else music_gain_db
    original_gain_db = cfg.original_gain_db if original_gain_db is None else original_gain_db
    src_path, out_path = Path(video_in), Path(out_path)
    if not src_path.is_file():
        raise VbgmError(f"{src_path}: video not found")
    if out_path.resolve() == src_path.resolve() or (
            out_path.exists() and os.path.samefile(out_path, src_path)):
        raise VbgmError(f"{out_path}: refusing to overwrite the input video")
    fmt = CONTAINERS.get(out_path.suffix.lower())
    if fmt is None:
        raise VbgmError(f"{out_path}: unsupported output type {out_path.suffix!r}; "
                        f"use one of {', '.join(CONTAINERS)}")
    if sample_rate not in AAC_RATES:
        raise VbgmError(f"{out_path}: AAC cannot store {sample_rate} Hz audio; use one of "
                        f"{', '.join(map(str, sorted(AAC_RATES)))}")
    gain = np.float32(db_to_gain(music_gain_db))
    if isinstance(audio, AudioFile) and not keep_audio:
        music: np.ndarray | _Scaled = _Scaled(audio, gain)  # read block by block: flat memory
    else:
        try:
            music = _stereo(audio.to_array() if isinstance(audio, AudioFile) else audio) * gain
        except ValueError as exc:
            raise VbgmError(f"{out_path}: bad music for {src_path}: {exc}") from exc

    try:
        try:
            timing, original, original_start = _scan_file(src_path, keep_audio, sample_rate)
        except _AudioUnreadable as exc:
            warn(f"{src_path}: its own sound cannot be decoded ({exc}); the music is muxed "
                 f"without it")
            timing, original, original_start = _scan_file(src_path, False, sample_rate)
        with av.open(str(src_path)) as src:
            return _write(src, music, original, original_start, timing, sample_rate, out_path, fmt,
                          db_to_gain(original_gain_db), cfg, duck if keep_audio else None)
    except VbgmError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        if _is_write_error(exc, out_path):
            raise WriteError(out_path, reason(exc)) from exc
        raise VbgmError(f"{src_path}: cannot read this video ({reason(exc)})") from exc


class _Scaled:
    """An AudioFile read at a gain, with silence past its end."""

    def __init__(self, audio: AudioFile, gain: np.float32) -> None:
        self.audio, self.gain = audio, gain

    def read(self, start: int, stop: int) -> np.ndarray:
        x = self.audio.read(start, stop) * self.gain
        missing = stop - start - len(x)
        return np.concatenate([x, np.zeros((missing, 2), np.float32)]) if missing > 0 else x


def _block_frames(music: _Scaled, n: int, sample_rate: int, pts0: int, ceiling_db: float
                  ) -> Iterator[av.AudioFrame]:
    """`_audio_frames` of the music fitted to `n` frames (`fit_to_length`) and peak-limited,
    computed one block at a time (BLOCK is a multiple of AAC_FRAME, so the frames are the same).
    """
    trimmed = len(music.audio) > n
    n_fade = min(n, round(TRIM_FADE_S * sample_rate)) if trimmed else 0
    ramp = fade(np.ones((n_fade, 2), np.float32), sample_rate, 0.0, TRIM_FADE_S) \
        if n_fade else None

    def fitted(start: int, stop: int) -> np.ndarray:
        x = music.read(start, stop)
        if ramp is not None and stop > n - n_fade:
            a = max(start, n - n_fade)
            x[a - start:] = x[a - start:] * ramp[a - (n - n_fade): stop - (n - n_fade)]
        return x

    at = pts0
    for block in limit_blocks(fitted, n, sample_rate, ceiling_db, size=BLOCK):
        yield from _audio_frames(block, sample_rate, at)
        at += len(block)


def _track(music: np.ndarray, original: np.ndarray | None, original_start: float,
           timing: _VideoTiming, n: int, sample_rate: int, original_gain: float,
           cfg: MuxConfig, duck: DuckConfig | None = None
           ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """The whole sound track in memory: music (ducked under the original sound when `duck`,
    plus the original sound), fitted and limited; and the ducking curve (None: not ducked)."""
    track = fit_to_length(music, n, sample_rate)
    curve = None
    if original is not None:
        offset = round((original_start - timing.start_s) * sample_rate)
        original = original[-offset:] if offset < 0 else np.concatenate(
            [np.zeros((offset, 2), np.float32), original])
        original = fit_to_length(original, n, sample_rate)
        if duck is not None:
            track, curve = duck_music(track, original, sample_rate, duck)
        track = track + original * np.float32(original_gain)
    return limit_peaks(track, sample_rate, cfg.ceiling_db), curve


def _write(src: av.container.InputContainer, music: np.ndarray | _Scaled,
           original: np.ndarray | None,
           original_start: float, timing: _VideoTiming, sample_rate: int, out_path: Path,
           fmt: str, original_gain: float, cfg: MuxConfig,
           duck: DuckConfig | None = None) -> MuxResult:
    vin = src.streams.video[0]
    copy = timing.codec in COPYABLE[fmt] and not cfg.reencode

    # The sound track: music (plus the original sound) over the video's exact span.
    n = round(timing.duration_s * sample_rate)
    t0 = timing.start_s if copy else 0.0  # copied packets keep their timestamps
    curve = None
    if isinstance(music, _Scaled):
        frames = _block_frames(music, n, sample_rate, round(t0 * sample_rate), cfg.ceiling_db)
    else:
        track, curve = _track(music, original, original_start, timing, n, sample_rate,
                              original_gain, cfg, duck)
        frames = _audio_frames(track, sample_rate, round(t0 * sample_rate))
    with atomic_path(out_path) as tmp, av.open(str(tmp), "w", format=fmt) as out:
        vout = _open_video_stream(out, vin, copy, cfg)
        aout = out.add_stream("aac", rate=sample_rate, layout="stereo")
        aout.bit_rate = cfg.audio_bitrate
        aout.options = {"aac_coder": cfg.aac_coder}
        audio_time = t0
        encoded = 0

        def audio_until(t: float | None) -> None:
            """Encode and write the music up to time `t` (all of it when None): interleaving."""
            nonlocal audio_time
            while t is None or audio_time <= t:
                frame = next(frames, None)
                if frame is None:
                    out.mux(aout.encode(None))
                    audio_time = float("inf")
                    return
                out.mux(aout.encode(frame))
                audio_time = float(frame.pts + frame.samples) / sample_rate

        for packet in src.demux(vin):
            if copy:
                if packet.dts is None and packet.pts is None:  # the demuxer's final flush packet
                    continue
                audio_until(float((packet.dts if packet.dts is not None else packet.pts)
                                  * packet.time_base))
                packet.stream = vout
                out.mux(packet)
                continue
            for frame in packet.decode():  # the final empty packet flushes delayed frames
                if frame.pts is not None:
                    frame_time = float(frame.pts * frame.time_base) - timing.start_s
                else:  # no timestamp: place it by its index at the nominal frame rate
                    frame_time = encoded / float(timing.rate)
                encoded += 1
                audio_until(frame_time)
                image = frame.reformat(width=vout.width, height=vout.height, format="yuv420p")
                image.pts = round(frame_time / vout.codec_context.time_base)
                image.time_base = vout.codec_context.time_base
                out.mux(vout.encode(image))
        if not copy:
            out.mux(vout.encode(None))
        audio_until(None)
    return MuxResult(video_copied=copy, video_codec=timing.codec, duration_s=timing.duration_s,
                     audio_samples=n, kept_original_audio=original is not None, ducking=curve)
