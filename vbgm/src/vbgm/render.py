"""MIDI → stereo audio with a General MIDI SoundFont, then loudness normalisation.

Two synthesisers:
- `fluidsynth`: the FluidSynth program with a full GM SoundFont (Debian `fluidsynth` +
  `fluid-soundfont-gm`, or any SoundFont named by $VBGM_SOUNDFONT). Best sound; needs the system.
- `symusic`: symusic's built-in synthesizer with the small GM SoundFont (TimGM6mb, 6 MB) that the
  `pretty_midi` wheel ships. Works from pip alone.

`backend="auto"` picks FluidSynth when both the program and a GM SoundFont are found.

Whatever the synthesiser, the result is brought to one loudness (gated RMS, `target_db`) and then
peak-limited to `ceiling_db`, so renders of different songs sound equally loud and never clip.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
import warnings
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from vbgm.atomic import atomic_path
from vbgm.errors import VbgmError
from vbgm.midi import track_score

BACKENDS = ("auto", "fluidsynth", "symusic")

# Where distributions put a full GM SoundFont (Debian/Ubuntu, Fedora/Arch).
SYSTEM_SOUNDFONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)

SILENCE_THRESHOLD = 1e-4  # -80 dBFS: quieter than this counts as silence when trimming the tail


@dataclass
class RenderConfig:
    """How to turn MIDI into audio.

    target_db: loudness target, gated RMS in dB relative to full scale (1.0 = 0 dB).
    ceiling_db: the peak limiter's ceiling; no sample exceeds it.
    max_tail_s: how much release/reverb tail after the last note end is kept.
    fluidsynth_gain: FluidSynth's master gain (its output is float, so this only sets headroom).
    """

    sample_rate: int = 44100
    backend: str = "auto"
    soundfont: str | None = None
    target_db: float = -16.0
    ceiling_db: float = -1.0
    max_tail_s: float = 2.0
    fluidsynth_gain: float = 0.5


# ---------------------------------------------------------------------------------------------
# Finding the synthesiser and its SoundFont


def fluidsynth_program() -> str | None:
    """Path of the `fluidsynth` executable, or None."""
    return shutil.which("fluidsynth")


def system_soundfont() -> Path | None:
    """A full GM SoundFont for FluidSynth: $VBGM_SOUNDFONT first, then the usual system places."""
    env = os.environ.get("VBGM_SOUNDFONT")
    for candidate in ([env] if env else []) + list(SYSTEM_SOUNDFONTS):
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def bundled_soundfont() -> Path | None:
    """TimGM6mb.sf2 from the installed `pretty_midi` wheel, found without importing pretty_midi."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "TimGM6mb.sf2"
        if path.is_file():
            return path
    return None


def choose_backend(backend: str = "auto", soundfont: str | os.PathLike[str] | None = None
                   ) -> tuple[str, Path]:
    """Resolve `backend` ("auto" | "fluidsynth" | "symusic") and the SoundFont it will use.

    An explicit `soundfont` wins; otherwise FluidSynth uses the system GM SoundFont and the symusic
    synthesizer uses pretty_midi's TimGM6mb (so the pip-only path sounds the same everywhere).
    """
    if backend not in BACKENDS:
        raise VbgmError(f"unknown audio backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    explicit = Path(soundfont) if soundfont is not None else None
    if explicit is not None and not explicit.is_file():
        raise VbgmError(f"{explicit}: SoundFont not found")
    if backend == "auto":
        has_fluid = fluidsynth_program() is not None
        backend = "fluidsynth" if has_fluid and (explicit or system_soundfont()) else "symusic"
    if backend == "fluidsynth":
        if fluidsynth_program() is None:
            raise VbgmError("the fluidsynth program is not installed "
                            "(Debian: apt install fluidsynth)")
        sf = explicit or system_soundfont()
        if sf is None:
            raise VbgmError("no GM SoundFont for fluidsynth: set $VBGM_SOUNDFONT or install "
                            "fluid-soundfont-gm")
        return backend, sf
    sf = explicit or bundled_soundfont()
    if sf is None:
        raise VbgmError("no SoundFont for the symusic synthesizer: pretty_midi (which ships "
                        "TimGM6mb.sf2) is not installed; pass a SoundFont or set $VBGM_SOUNDFONT")
    return backend, sf


# ---------------------------------------------------------------------------------------------
# Rendering


def load_score(midi: str | os.PathLike[str] | symusic.Score) -> symusic.Score:
    """A symusic Score (tick time) from a MIDI path or a Score of any time unit."""
    if isinstance(midi, symusic.Score):
        return midi if isinstance(midi, symusic.core.ScoreTick) else midi.to("tick")
    path = Path(midi)
    if not path.is_file():
        raise VbgmError(f"{path}: MIDI file not found")
    try:
        return symusic.Score(path)
    except Exception as exc:  # symusic raises plain RuntimeError/ValueError on bad files
        raise VbgmError(f"{path}: not a readable MIDI file ({exc})") from exc


def score_seconds(score: symusic.Score) -> float:
    """Time in seconds at which the last note ends (0 for an empty score)."""
    seconds = score.to("second")
    return max((float(t.end()) for t in seconds.tracks if len(t.notes)), default=0.0)


@functools.lru_cache(maxsize=2)
def _synthesizer(soundfont: str, sample_rate: int) -> symusic.Synthesizer:
    """symusic's synthesizer with its SoundFont loaded once per process (reused in a batch)."""
    return symusic.Synthesizer(soundfont, sample_rate, 0)


def _render_symusic(score: symusic.Score, sample_rate: int, soundfont: Path) -> np.ndarray:
    synth = _synthesizer(str(soundfont), sample_rate)
    audio = synth.render(score, True)  # (2, n), Fortran order
    return np.ascontiguousarray(np.asarray(audio, dtype=np.float32).T)


def _fluidsynth_to_wav(score: symusic.Score, sample_rate: int, soundfont: Path, gain: float,
                       wav: Path) -> None:
    """Render with the FluidSynth program into the float WAV file `wav` (it streams to disk)."""
    with tempfile.TemporaryDirectory(prefix="vbgm-render-") as tmp:
        mid = Path(tmp) / "in.mid"
        score.dump_midi(str(mid))
        # Dynamic sample loading reads only the samples the song plays from the SoundFont: a
        # short song starts 0.3 s sooner and the process needs 50 MB, not 170 MB (FluidR3).
        cmd = [fluidsynth_program() or "fluidsynth", "-ni", "-q", "-O", "float", "-T", "wav",
               "-o", "synth.dynamic-sample-loading=1",
               "-F", str(wav), "-r", str(sample_rate), "-g", str(gain), str(soundfont), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise VbgmError(f"fluidsynth failed with {soundfont} (exit {proc.returncode}): "
                            f"{(proc.stderr or proc.stdout).strip()[-300:]}")


def _render_fluidsynth(score: symusic.Score, sample_rate: int, soundfont: Path,
                       gain: float) -> np.ndarray:
    with tempfile.TemporaryDirectory(prefix="vbgm-render-") as tmp:
        wav = Path(tmp) / "out.wav"
        _fluidsynth_to_wav(score, sample_rate, soundfont, gain, wav)
        from scipy.io import wavfile  # imported when used: 0.15 s of every start otherwise

        with warnings.catch_warnings():  # FluidSynth's float WAV has a chunk scipy skips
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            _, audio = wavfile.read(wav)
    audio = np.asarray(audio, dtype=np.float32)
    return audio[:, None].repeat(2, axis=1) if audio.ndim == 1 else audio[:, :2]


def fit_length(audio: np.ndarray, sample_rate: int, music_s: float,
               max_tail_s: float) -> np.ndarray:
    """Cut the render after the last audible sample, keeping the whole music and at most
    `max_tail_s` of release tail after it; pad with silence if the synthesiser stopped early."""
    n_music = round(music_s * sample_rate)
    n_max = n_music + round(max_tail_s * sample_rate)
    loud = np.flatnonzero(np.abs(audio[:n_max]).max(axis=1) > SILENCE_THRESHOLD)
    n = max(n_music, int(loud[-1]) + 1 if len(loud) else 0)
    if len(audio) < n:
        audio = np.concatenate([audio, np.zeros((n - len(audio), 2), np.float32)])
    return audio[:n]


def render_midi(midi: str | os.PathLike[str] | symusic.Score, sample_rate: int = 44100,
                backend: str = "auto", soundfont: str | os.PathLike[str] | None = None,
                config: RenderConfig | None = None) -> np.ndarray:
    """Render a MIDI file or symusic Score to float32 stereo audio `(n, 2)` at `sample_rate`.

    The result lasts as long as the music plus its release tail (≤ config.max_tail_s), is
    loudness-normalised to config.target_db and peak-limited to config.ceiling_db. A score
    without notes gives an empty (0, 2) array.
    """
    cfg = config or RenderConfig()
    backend, sf = choose_backend(backend, soundfont)
    score = load_score(midi)
    music_s = score_seconds(score)
    if music_s == 0.0:  # no notes: nothing to synthesise (symusic refuses an empty score)
        return np.zeros((0, 2), np.float32)
    if backend == "fluidsynth":
        audio = _render_fluidsynth(score, sample_rate, sf, cfg.fluidsynth_gain)
    else:
        audio = _render_symusic(score, sample_rate, sf)
    audio = fit_length(audio, sample_rate, music_s, cfg.max_tail_s)
    return normalize(audio, sample_rate, cfg.target_db, cfg.ceiling_db)


# ---------------------------------------------------------------------------------------------
# Loudness


def db_to_gain(db: float) -> float:
    """Linear amplitude for a level in dB."""
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    """Level in dB of a linear amplitude (-inf for 0)."""
    return float(20.0 * np.log10(gain)) if gain > 0 else float("-inf")


def peak_db(audio: np.ndarray) -> float:
    """Sample peak in dBFS."""
    return gain_to_db(float(np.abs(audio).max())) if audio.size else float("-inf")


def loudness_db(audio: np.ndarray, sample_rate: int, block_s: float = 0.4) -> float:
    """Gated RMS loudness in dBFS: mean power over 400 ms blocks, ignoring blocks below -70 dB
    and then those more than 10 dB below the mean of the rest (the BS.1770 gating, without the
    K-weighting filter). Silence and near-silence give -inf."""
    block = max(1, round(block_s * sample_rate))
    n = len(audio) // block * block
    if n == 0:
        power = np.array([np.mean(audio.astype(np.float64) ** 2)]) if audio.size else np.zeros(0)
    else:
        power = (audio[:n].astype(np.float64) ** 2).reshape(-1, block * audio.shape[1]).mean(axis=1)
    return _gated_level(power)


def _gated_level(power: np.ndarray) -> float:
    """The gated level in dBFS of per-block mean powers (absolute -70 dB, then relative -10 dB)."""
    power = power[power > 10 ** (-70 / 10)]
    if len(power) == 0:
        return float("-inf")
    power = power[power > power.mean() * 10 ** (-10 / 10)]
    return float(10 * np.log10(power.mean()))


def limit_peaks(audio: np.ndarray, sample_rate: int, ceiling_db: float = -1.0,
                window_s: float = 0.005) -> np.ndarray:
    """Look-ahead peak limiter: no sample of the result exceeds `ceiling_db`.

    The gain each sample needs is min-filtered over ±window and then averaged over ±window, which
    ramps the gain smoothly down before a peak and back up after it while staying at or below the
    needed gain everywhere (each averaged value is a mean of minima that all include that sample).
    """
    if audio.size == 0:
        return audio
    ceiling = db_to_gain(ceiling_db)
    peaks = np.abs(audio).max(axis=1)
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    if need.min() >= 1.0:
        return audio
    size = 2 * max(1, round(window_s * sample_rate)) + 1
    gain = running_mean(running_min(need, size), size)
    out = audio * gain[:, None].astype(np.float32)
    return np.clip(out, -ceiling, ceiling)  # guards float rounding only


def running_min(x: np.ndarray, width: int) -> np.ndarray:
    """Minimum over the centred window of odd `width` at every sample, the ends extended
    (scipy.ndimage's minimum_filter1d, mode "nearest"; importing scipy.ndimage costs 0.13-0.15 s
    of every start). O(n): van Herk / Gil-Werman prefix and suffix minima in blocks of `width`."""
    half = width // 2
    padded = np.pad(x, half, mode="edge")
    n = len(padded)
    blocks = np.pad(padded, (0, -n % width), mode="edge").reshape(-1, width)
    ahead = np.minimum.accumulate(blocks, axis=1).ravel()  # block start .. i
    behind = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()  # i .. block end
    return np.minimum(behind[:len(x)], ahead[width - 1: width - 1 + len(x)])


def running_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Mean over the centred window of odd `width`, the ends extended (scipy.ndimage's
    uniform_filter1d, mode "nearest")."""
    half = width // 2
    total = np.concatenate([[0.0], np.cumsum(np.pad(x, half, mode="edge"), dtype=np.float64)])
    return (total[width:] - total[:-width]) / width


def normalize(audio: np.ndarray, sample_rate: int, target_db: float = -16.0,
              ceiling_db: float = -1.0) -> np.ndarray:
    """Scale to `target_db` gated RMS loudness, then peak-limit to `ceiling_db`. Silence stays."""
    level = loudness_db(audio, sample_rate)
    if np.isfinite(level):
        audio = audio * np.float32(db_to_gain(target_db - level))
    return limit_peaks(audio.astype(np.float32), sample_rate, ceiling_db)


def fade(audio: np.ndarray, sample_rate: int, in_s: float = 0.0, out_s: float = 0.0) -> np.ndarray:
    """Raised-cosine fade-in over the first `in_s` seconds and fade-out over the last `out_s`."""
    out = np.array(audio, dtype=np.float32, copy=True)
    for seconds, at_start in ((in_s, True), (out_s, False)):
        n = min(len(out), round(seconds * sample_rate))
        if n <= 0:
            continue
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float64))).astype(np.float32)
        if at_start:
            out[:n] *= ramp[:, None] if out.ndim == 2 else ramp
        else:
            out[-n:] *= ramp[::-1, None] if out.ndim == 2 else ramp[::-1]
    return out


# ---------------------------------------------------------------------------------------------
# WAV files


def write_wav(path: str | os.PathLike[str], audio: np.ndarray | AudioFile,
              sample_rate: int) -> None:
    """Write float audio `(n, channels)` or `(n,)` in [-1, 1] as 16-bit PCM WAV, atomically.
    An `AudioFile` is written block by block (flat memory)."""
    if isinstance(audio, AudioFile):
        with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            for block in audio.blocks():
                w.writeframes(np.round(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2")
                              .tobytes())
        return
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or not np.isfinite(audio).all():
        raise VbgmError(f"{path}: audio must be a finite (n, channels) array, got {audio.shape}")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())


def read_wav(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 `(n, channels)` in [-1, 1] and its sample rate."""
    from scipy.io import wavfile

    try:
        sample_rate, data = wavfile.read(path)
    except (OSError, ValueError) as exc:
        raise VbgmError(f"{path}: not a readable WAV file ({exc})") from exc
    data = np.asarray(data)
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max)
    elif data.dtype.kind == "u":
        data = (data.astype(np.float32) - 128.0) / 128.0
    data = data.astype(np.float32)
    return (data[:, None] if data.ndim == 1 else data), int(sample_rate)


# ---------------------------------------------------------------------------------------------
# Rendering in blocks: memory flat with the length of the music

BLOCK = 1 << 18  # samples per block (≈ 6 s at 44.1 kHz, 2 MiB of stereo float32); a multiple of
# the 1024-sample AAC frame and of nothing else that matters
Reader = Callable[[int, int], np.ndarray]  # (start, stop) -> float32 (stop - start, 2)


class AudioFile:
    """Stereo float32 audio in a raw file, read in blocks: a song of any length in flat memory.

    The file (interleaved little-endian float32, `n` frames) belongs to the caller, who removes
    it (e.g. a temporary folder around the render and the mux).
    """

    def __init__(self, path: str | os.PathLike[str], n: int, sample_rate: int) -> None:
        self.path, self.n, self.sample_rate = Path(path), int(n), int(sample_rate)

    def __len__(self) -> int:
        return self.n

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) as float32 (k, 2)."""
        start, stop = max(0, start), min(self.n, stop)
        if stop <= start:
            return np.zeros((0, 2), np.float32)
        with self.path.open("rb") as f:
            f.seek(start * 8)
            data = np.fromfile(f, "<f4", count=(stop - start) * 2)
        return data.reshape(-1, 2)

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """The audio in consecutive blocks of `size` frames (the last one shorter)."""
        for start in range(0, self.n, size):
            yield self.read(start, start + size)

    def to_array(self) -> np.ndarray:
        """All of it in memory (for callers that need the whole array)."""
        return self.read(0, self.n)


def _wav_reader(path: Path) -> tuple[Reader, int]:
    """(reader of stereo float32 frames, number of frames) of a PCM-16/24/32 or float WAV file,
    read with plain file reads (a memory map would count the whole file as resident)."""
    with path.open("rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise VbgmError(f"{path}: not a WAV file")
        fmt, data_at, data_len = None, None, 0
        while data_at is None:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise VbgmError(f"{path}: WAV file without a data chunk")
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"fmt ":
                fmt = f.read(size + size % 2)
            elif chunk[:4] == b"data":
                data_at, data_len = f.tell(), size
            else:
                f.seek(size + size % 2, 1)
    if fmt is None:
        raise VbgmError(f"{path}: WAV file without a format chunk")
    tag, channels = int.from_bytes(fmt[0:2], "little"), int.from_bytes(fmt[2:4], "little")
    bits = int.from_bytes(fmt[14:16], "little")
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
        tag = int.from_bytes(fmt[24:26], "little")
    dtypes = {(3, 32): "<f4", (1, 16): "<i2", (1, 32): "<i4"}
    if (tag, bits) not in dtypes:
        raise VbgmError(f"{path}: unsupported WAV sample format ({tag}, {bits} bits)")
    dtype = np.dtype(dtypes[(tag, bits)])
    frame = dtype.itemsize * channels
    file_n = min(data_len, path.stat().st_size - data_at) // frame

    def read(start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(file_n, stop)
        if stop <= start:
            return np.zeros((0, 2), np.float32)
        with path.open("rb") as f:
            f.seek(data_at + start * frame)
            x = np.fromfile(f, dtype, count=(stop - start) * channels).reshape(-1, channels)
        x = x.astype(np.float32) / (1.0 if dtype.kind == "f" else float(np.iinfo(dtype).max))
        return x[:, :2] if channels >= 2 else x.repeat(2, axis=1)

    return read, file_n


def _padded(read: Reader, available: int) -> Reader:
    """`read` that gives silence past the `available` frames (a synthesiser that stopped early)."""
    def padded(start: int, stop: int) -> np.ndarray:
        x = read(start, min(stop, available)) if start < available else np.zeros((0, 2),
                                                                                  np.float32)
        missing = stop - start - len(x)
        return np.concatenate([x, np.zeros((missing, 2), np.float32)]) if missing > 0 else x
    return padded


def _fitted_length(read: Reader, available: int, sample_rate: int, music_s: float,
                   max_tail_s: float) -> int:
    """`fit_length`'s length, found in one streaming pass."""
    n_music = round(music_s * sample_rate)
    n_max = min(available, n_music + round(max_tail_s * sample_rate))
    last = -1
    for start in range(0, n_max, BLOCK):
        loud = np.flatnonzero(np.abs(read(start, min(start + BLOCK, n_max))).max(axis=1)
                              > SILENCE_THRESHOLD)
        if len(loud):
            last = start + int(loud[-1])
    return max(n_music, last + 1)


def _loudness_streamed(read: Reader, n: int, sample_rate: int, block_s: float = 0.4) -> float:
    """`loudness_db` of the first `n` frames of `read`, one block of audio in memory at a time
    (the same 400 ms blocks, so the same figure)."""
    block = max(1, round(block_s * sample_rate))
    whole = n // block * block
    if whole == 0:
        return loudness_db(read(0, n), sample_rate, block_s)
    step = block * max(1, BLOCK // block)
    powers = [(read(a, min(a + step, whole)).astype(np.float64) ** 2)
              .reshape(-1, block * 2).mean(axis=1) for a in range(0, whole, step)]
    return _gated_level(np.concatenate(powers))


def _limiter_gains(read: Reader, n: int, sample_rate: int, ceiling_db: float = -1.0,
                   window_s: float = 0.005, size: int = BLOCK
                   ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray | None]]:
    """(start, stop, block, gain or None for unity) of `limit_peaks` over the `n` frames `read`
    gives, block by block: the gain is what the limiter multiplies the block by, so the same
    gain can be applied to the parts (stems) of which that audio is the sum.

    Each block's gain is found with 2·window of context on both sides (the reach of the min
    filter and then the mean filter), so it matches the whole-array limiter up to float rounding
    while only one block is in memory.
    """
    half = max(1, round(window_s * sample_rate))
    reach = 2 * half
    ceiling = db_to_gain(ceiling_db)
    for start in range(0, n, size):
        stop = min(start + size, n)
        lo, hi = max(0, start - reach), min(n, stop + reach)
        ext = read(lo, hi)
        need = np.minimum(1.0, ceiling / np.maximum(np.abs(ext).max(axis=1), 1e-12))
        block = ext[start - lo: stop - lo]
        if need.min() >= 1.0:
            yield start, stop, block, None
            continue
        width = 2 * half + 1
        gain = running_mean(running_min(need, width), width)[start - lo: stop - lo]
        yield start, stop, block, gain[:, None].astype(np.float32)


def limit_blocks(read: Reader, n: int, sample_rate: int, ceiling_db: float = -1.0,
                 window_s: float = 0.005, size: int = BLOCK) -> Iterator[np.ndarray]:
    """`limit_peaks` of the `n` frames `read` gives, yielded in blocks of `size` frames (the
    result matches the whole-array limiter up to float rounding; see `_limiter_gains`)."""
    ceiling = db_to_gain(ceiling_db)
    for _, _, block, gain in _limiter_gains(read, n, sample_rate, ceiling_db, window_s, size):
        yield block if gain is None else np.clip(block * gain, -ceiling, ceiling)


def _synthesise(score: symusic.Score, backend: str, sf: Path, sample_rate: int,
                cfg: RenderConfig, raw: Path) -> tuple[Reader, int]:
    """(reader padded with silence, frames the synthesiser gave) of the raw render of `score`
    (FluidSynth streams to the WAV file `raw`, which the caller removes)."""
    if backend == "fluidsynth":
        _fluidsynth_to_wav(score, sample_rate, sf, cfg.fluidsynth_gain, raw)
        read, available = _wav_reader(raw)
    else:
        whole = _render_symusic(score, sample_rate, sf)
        read, available = (lambda a, b: whole[a:b]), len(whole)
    return _padded(read, available), available


def render_to_file(midi: str | os.PathLike[str] | symusic.Score,
                   path: str | os.PathLike[str], sample_rate: int = 44100,
                   backend: str = "auto", soundfont: str | os.PathLike[str] | None = None,
                   config: RenderConfig | None = None) -> AudioFile:
    """`render_midi` into a raw float32 file at `path`, in blocks: the same audio (up to float
    rounding), with memory flat in the length of the music.

    FluidSynth streams its render to a WAV file beside `path`, read back block by block for the
    length, loudness and limiter passes. symusic's synthesiser only renders whole songs, so with
    it the render itself still holds the song once (the passes after it are blocked).
    """
    return render_with_stems(midi, path, (), sample_rate, backend, soundfont, config)[0]


def render_with_stems(midi: str | os.PathLike[str] | symusic.Score,
                      path: str | os.PathLike[str],
                      stem_paths: Sequence[str | os.PathLike[str]], sample_rate: int = 44100,
                      backend: str = "auto", soundfont: str | os.PathLike[str] | None = None,
                      config: RenderConfig | None = None) -> tuple[AudioFile, list[AudioFile]]:
    """`render_to_file` of the mix, plus one raw float32 file per track of the score (stem i of
    track i, at `stem_paths[i]`; none when `stem_paths` is empty).

    Each track is synthesised alone with the same synthesiser and SoundFont, then given exactly
    the mix's treatment: the mix's loudness gain and, sample by sample, the gain the mix's peak
    limiter applied. The stems are as long as the mix and sum to it (up to the synthesiser's own
    non-linearities, e.g. voice stealing), so an editor can mute one and keep the rest as heard.
    """
    cfg = config or RenderConfig()
    backend, sf = choose_backend(backend, soundfont)
    score = load_score(midi)
    path = Path(path)
    stems = [Path(p) for p in stem_paths]
    if stems and len(stems) != len(score.tracks):
        raise VbgmError(f"{len(stems)} stem files for {len(score.tracks)} tracks")
    music_s = score_seconds(score)
    if music_s == 0.0:
        for p in (path, *stems):
            p.write_bytes(b"")
        return AudioFile(path, 0, sample_rate), [AudioFile(p, 0, sample_rate) for p in stems]
    raws = [path.with_name(p.name + ".synth.wav") for p in (path, *stems)]
    try:
        read, available = _synthesise(score, backend, sf, sample_rate, cfg, raws[0])
        silent = _padded(lambda a, b: np.zeros((0, 2), np.float32), 0)  # a track without notes
        parts = [_synthesise(track_score(score, i), backend, sf, sample_rate, cfg, raw)[0]
                 if score.tracks[i].note_num() else silent for i, raw in enumerate(raws[1:])]
        n = _fitted_length(read, available, sample_rate, music_s, cfg.max_tail_s)
        level = _loudness_streamed(read, n, sample_rate)
        scale = np.float32(db_to_gain(cfg.target_db - level)) if np.isfinite(level) else None

        def scaled(reader: Reader) -> Reader:
            def scaled_read(a: int, b: int) -> np.ndarray:
                x = reader(a, b)
                return (x * scale if scale is not None else x).astype(np.float32)
            return scaled_read

        ceiling = db_to_gain(cfg.ceiling_db)
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(path.open("wb"))
            stem_outs = [stack.enter_context(p.open("wb")) for p in stems]
            stem_reads = [scaled(r) for r in parts]
            for start, stop, block, gain in _limiter_gains(scaled(read), n, sample_rate,
                                                           cfg.ceiling_db):
                if gain is not None:
                    block = np.clip(block * gain, -ceiling, ceiling)
                out.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
                for f, r in zip(stem_outs, stem_reads):
                    x = r(start, stop)
                    f.write(np.ascontiguousarray(x if gain is None else x * gain,
                                                 dtype="<f4").tobytes())
    finally:
        for raw in raws:
            raw.unlink(missing_ok=True)
    return AudioFile(path, n, sample_rate), [AudioFile(p, n, sample_rate) for p in stems]

