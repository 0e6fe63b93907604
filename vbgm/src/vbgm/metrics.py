"""Objective music metrics (the CMT paper's Table 1) and reference-free video–music fit metrics.

Every metric is a pure function over a `Song` (or plain arrays); nothing here reads files.

Paper metrics (each "closer to the real data is better"):
- `pitch_entropy`: Shannon entropy (bits) of the pitch histogram, 128 MIDI pitches, drums out.
- `grooving_similarity`: mean over bar pairs of 1 − (positions where exactly one bar has an
  onset) / 16.
- `structureness`: Müller's audio-thumbnailing fitness, maximised over segments of a length range
  (short 3–8 s by default, see `SI_RANGES`).

Video–music fit (no reference music needed): `density_fidelity`, `strength_fidelity`,
`beat_hit_rate`, `beat_align_score`, `length_error`, gathered by `video_fit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vbgm.errors import VbgmError
from vbgm.harmony import DISSONANT_INTERVALS, KEY_PROFILES, MAJOR_STEPS, MINOR_STEPS, detect_key
from vbgm.song import (
    BASS,
    DRUMS,
    DURATION,
    GM_PERCUSSION,
    INSTRUMENT,
    ONSET,
    PITCH,
    SIXTEENTHS_PER_BAR,
    VELOCITY,
    Song,
    bar_length,
)
from vbgm.structure import bar_share

# ---------------------------------------------------------------------------------------------
# Pitch entropy


def _pitched(song: Song) -> np.ndarray:
    """The song's notes without drums (drum "pitches" are instrument keys, not pitches)."""
    return song.notes[song.notes[:, INSTRUMENT] != DRUMS]


def _entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a histogram of counts; NaN for an empty histogram."""
    total = counts.sum()
    if total <= 0:
        return math.nan
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum() + 0.0)


def pitch_histogram(song: Song, pitch_classes: bool = False) -> np.ndarray:
    """Note counts per MIDI pitch (128 bins) or per pitch class (12 bins), drums excluded.

    Each note counts once, whatever its duration or velocity (as MusDr counts note events).
    """
    pitches = _pitched(song)[:, PITCH]
    if pitch_classes:
        return np.bincount(pitches % 12, minlength=12)
    return np.bincount(np.clip(pitches, 0, 127), minlength=128)


def pitch_entropy(song: Song, bars: int | None = None, pitch_classes: bool = False) -> float:
    """Entropy in bits of the pitch histogram: over the whole song, or the mean over windows.

    bars=None: one histogram over the whole song (what Table 1 reports: the paper's data value
        4.452 exceeds log2(12), so it is the 128-pitch version over whole songs).
    bars=n: the song is cut into consecutive windows of n bars (the last may be shorter); the
        result is the mean entropy over windows that hold at least one pitched note (MusDr's H1
        and H4 are pitch_classes=True with n = 1 and 4).
    pitch_classes: 12 pitch-class bins instead of 128 pitches.
    Range 0 (one pitch) .. log2(128) = 7 (log2(12) ≈ 3.585 for pitch classes); NaN when the song
    has no pitched notes.
    """
    if bars is None:
        return _entropy_bits(pitch_histogram(song, pitch_classes))
    if bars < 1:
        raise VbgmError(f"pitch entropy window must be at least 1 bar, got {bars}")
    notes = _pitched(song)
    if len(notes) == 0:
        return math.nan
    k = 12 if pitch_classes else 128
    bins = notes[:, PITCH] % 12 if pitch_classes else np.clip(notes[:, PITCH], 0, 127)
    window = notes[:, ONSET] // (bars * SIXTEENTHS_PER_BAR)
    counts = np.zeros((int(window.max()) + 1, k))
    np.add.at(counts, (window, bins), 1)
    counts = counts[counts.sum(axis=1) > 0]
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    return float(h.mean() + 0.0)


# ---------------------------------------------------------------------------------------------
# Grooving pattern similarity


def grooving_vectors(song: Song) -> np.ndarray:
    """Bool array (n_bars, 16): True where any note of any instrument starts at that sixteenth."""
    n_bars = max(song.n_bars, int(song.notes[:, ONSET].max()) // SIXTEENTHS_PER_BAR + 1
                 if len(song.notes) else 0)
    grid = np.zeros(n_bars * SIXTEENTHS_PER_BAR, dtype=bool)
    grid[song.notes[:, ONSET]] = True
    return grid.reshape(n_bars, SIXTEENTHS_PER_BAR)


def grooving_similarity(song: Song, max_pairs: int = 2000, seed: int = 0,
                        skip_empty: bool = True) -> float:
    """Grooving pattern similarity (MusDr's GS) in 0..1: rhythmic consistency between bars.

    Each bar's grooving vector marks its 16 onset positions (all instruments, drums included).
    For two bars a, b the similarity is 1 − |a XOR b| / 16; GS is the mean over all pairs of
    bars, or over `max_pairs` pairs drawn without replacement with a seeded RNG when there are
    more (deterministic for a given song and seed). skip_empty: bars with no onset are left out
    (silence is no groove; otherwise leading/trailing rests would dominate). NaN with < 2 bars.
    """
    vecs = grooving_vectors(song)
    if skip_empty:
        vecs = vecs[vecs.any(axis=1)]
    n = len(vecs)
    if n < 2:
        return math.nan
    n_pairs = n * (n - 1) // 2
    if n_pairs <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        # Draw pair indices in 0..n_pairs-1 and map them back to (i, j) of the upper triangle.
        flat = np.random.default_rng(seed).choice(n_pairs, size=max_pairs, replace=False)
        i, j = _pair_from_index(flat, n)
    xor = np.count_nonzero(vecs[i] != vecs[j], axis=1)
    return float(np.mean(1.0 - xor / SIXTEENTHS_PER_BAR))


def _pair_from_index(flat: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major index into the strict upper triangle of an n×n matrix → (i, j), i < j."""
    starts = np.concatenate([[0], np.cumsum(np.arange(n - 1, 0, -1))])  # first index of row i
    i = np.searchsorted(starts, flat, side="right") - 1
    j = flat - starts[i] + i + 1
    return i, j


# ---------------------------------------------------------------------------------------------
# Structureness indicator (Müller, Grosche & Jiang 2013, "A segment-based fitness measure for
# capturing repetitive structures of music recordings"; the FMP "audio thumbnailing" recipe)

# Segment-length ranges in seconds (MusDr's SI_short / SI_mid / SI_long).
SI_RANGES: dict[str, tuple[float, float]] = {
    "short": (3.0, 8.0),
    "mid": (8.0, 15.0),
    "long": (15.0, math.inf),
}
DEFAULT_SI_RANGE = "short"


@dataclass
class StructureConfig:
    """Parameters of the structureness pipeline (defaults follow Müller's thumbnailing setup).

    chroma_rate: frame rate (Hz) of the raw chroma (STFT hop, or the piano-roll rate).
    feature_rate: rate after smoothing and downsampling; the SSM and scape plot run at it.
    smooth_s: length of the Hann window that smooths chroma before downsampling.
    path_s: length of the diagonal path-smoothing filter in the SSM.
    tempo_rel: relative tempi of the smoothing paths (log-spaced 0.66..1.5: tempo robustness).
    threshold: share of SSM cells kept (relative thresholding); kept cells are scaled to 0..1.
    penalty: value of every other cell (negative: paths through them cost score).
    long_stride: in the unbounded "long" range, only every long_stride-th segment length and start
        are evaluated (the full plot is O(N^4)); 1 = exact.
    """

    chroma_rate: float = 10.0
    feature_rate: float = 2.0
    smooth_s: float = 2.1
    path_s: float = 6.0
    tempo_rel: tuple[float, ...] = field(
        default_factory=lambda: tuple(float(x) for x in np.geomspace(0.66, 1.5, 5)))
    threshold: float = 0.15
    penalty: float = -2.0
    long_stride: int = 4


def notes_chroma(song: Song, tempo_bpm: float, frame_rate: float = 10.0) -> np.ndarray:
    """Piano-roll chroma (12, F) at `frame_rate`: velocity-weighted sounding pitch classes.

    The cheap stand-in for audio chroma: each pitched note adds velocity/127 to its pitch class
    over the frames it sounds (sixteenth = 15/tempo s); drums are left out. Log-compressed.
    """
    if tempo_bpm <= 0:
        raise VbgmError(f"tempo must be positive, got {tempo_bpm}")
    sixteenth_s = 15.0 / tempo_bpm
    n_frames = max(1, math.ceil(song.n_sixteenths * sixteenth_s * frame_rate))
    notes = _pitched(song)
    diff = np.zeros((12, n_frames + 1))
    if len(notes):
        start = np.floor(notes[:, ONSET] * sixteenth_s * frame_rate).astype(int)
        end = np.ceil((notes[:, ONSET] + notes[:, DURATION]) * sixteenth_s * frame_rate)
        end = np.maximum(end.astype(int), start + 1)
        start, end = np.clip(start, 0, n_frames), np.clip(end, 0, n_frames)
        pc, w = notes[:, PITCH] % 12, notes[:, VELOCITY] / 127.0
        np.add.at(diff, (pc, start), w)
        np.add.at(diff, (pc, end), -w)
    roll = np.maximum(np.cumsum(diff, axis=1)[:, :n_frames], 0.0)
    return np.log1p(10.0 * roll)


def audio_chroma(audio: np.ndarray, sample_rate: int, frame_rate: float = 10.0) -> np.ndarray:
    """STFT chroma (12, F) at `frame_rate` of mono or (n, channels) audio.

    Window = 2 hops (Hann); each bin between MIDI pitches 21 and 108 adds its power to the pitch
    class of its nearest equal-tempered pitch (A4 = 440 Hz); log-compressed.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    hop = max(1, int(round(sample_rate / frame_rate)))
    n_fft = 2 * hop
    n_frames = max(1, math.ceil(len(x) / hop))
    x = np.pad(x, (hop, n_fft + n_frames * hop - len(x) - hop))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n_frames]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2  # (F, bins)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    with np.errstate(divide="ignore"):
        pitch = np.round(69 + 12 * np.log2(freqs / 440.0))
    use = (pitch >= 21) & (pitch <= 108)
    mapping = np.zeros((len(freqs), 12))
    mapping[np.nonzero(use)[0], pitch[use].astype(int) % 12] = 1.0
    return np.log1p(100.0 * (power @ mapping).T / n_fft)


def chroma_features(chroma: np.ndarray, chroma_rate: float,
                    config: StructureConfig | None = None) -> np.ndarray:
    """Smooth (Hann window), downsample to config.feature_rate and L2-normalise chroma (12, F).

    Frames with (almost) no energy become the uniform unit vector, so silence matches silence.
    """
    cfg = config or StructureConfig()
    c = np.asarray(chroma, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != 12:
        raise VbgmError(f"chroma must have shape (12, frames), got {c.shape}")
    c = _unit_columns(c, 1e-3)
    width = max(1, int(round(cfg.smooth_s * chroma_rate)))
    win = np.hanning(width + 2)[1:-1]
    c = np.stack([np.convolve(row, win / win.sum(), mode="same") for row in c])
    step = max(1, int(round(chroma_rate / cfg.feature_rate)))
    return _unit_columns(c[:, ::step], 1e-3)


def _unit_columns(x: np.ndarray, floor: float) -> np.ndarray:
    norm = np.linalg.norm(x, axis=0)
    out = x / np.maximum(norm, 1e-12)
    out[:, norm < floor] = 1.0 / math.sqrt(x.shape[0])
    return out


def self_similarity(features: np.ndarray, config: StructureConfig | None = None) -> np.ndarray:
    """Enhanced, thresholded SSM (N, N) of unit chroma features (12, N) at config.feature_rate.

    1. Transposition: one dot-product SSM per cyclic chroma shift k = 0..11 of the second copy.
    2. Tempo: each is averaged along paths of L = path_s·feature_rate cells with offsets
       (l, round(l·r)), l = 0..L−1, for every relative tempo r; forward (the path starts at the
       cell) and backward (the same path ends at the cell). Cells outside the matrix are left out
       of the mean.
    3. The maximum over shifts, tempi and directions is kept; then the top `threshold` share of
       cells is kept and scaled to 0..1, the rest set to `penalty`, and the main diagonal set to 1
       (Müller's normalisation S(n, n) = 1).
    """
    cfg = config or StructureConfig()
    x = np.asarray(features, dtype=np.float32)
    n = x.shape[1]
    shifted = np.stack([x.T @ np.roll(x, k, axis=0) for k in range(12)])  # (12, N, N)
    length = max(1, int(round(cfg.path_s * cfg.feature_rate)))
    best = np.full((n, n), -np.inf, dtype=np.float32)
    for r in cfg.tempo_rel:
        dm = np.round(np.arange(length) * r).astype(int)
        pad_n, pad_m = length - 1, int(dm[-1])
        big = np.zeros((12, n + pad_n, n + pad_m), dtype=np.float32)
        big[:, :n, :n] = shifted
        inside = np.zeros((n + pad_n, n + pad_m), dtype=np.float32)
        inside[:n, :n] = 1.0
        total = np.zeros((12, n, n), dtype=np.float32)
        count = np.zeros((n, n), dtype=np.float32)
        for dn_l, dm_l in enumerate(dm):
            total += big[:, dn_l:dn_l + n, dm_l:dm_l + n]
            count += inside[dn_l:dn_l + n, dm_l:dm_l + n]
        forward = total.max(axis=0) / count
        np.maximum(best, forward, out=best)
        # Backward: the path that ends at (n, m) starts at (n − pad_n, m − pad_m) (none ends
        # inside the matrix when the path is longer than the piece).
        if pad_n < n and pad_m < n:
            np.maximum(best[pad_n:, pad_m:], forward[:n - pad_n, :n - pad_m],
                       out=best[pad_n:, pad_m:])
    return _threshold(best.astype(np.float64), cfg.threshold, cfg.penalty)


def _threshold(s: np.ndarray, keep: float, penalty: float) -> np.ndarray:
    flat = np.sort(s, axis=None)
    cut = flat[min(len(flat) - 1, int(round(len(flat) * (1.0 - keep))))]
    top = s.max()
    out = np.full_like(s, penalty)
    kept = s >= cut
    out[kept] = (s[kept] - cut) / (top - cut) if top > cut else 1.0
    np.fill_diagonal(out, 1.0)
    return out


# Packed bookkeeping of a path family (int64): cells * _CELL + (coverage − start row + _BIAS).
_CELL = 1 << 32
_BIAS = 1 << 31


def fitness_scape(ssm: np.ndarray, lengths: np.ndarray, start_stride: int = 1) -> np.ndarray:
    """Fitness (len(lengths), N) of every segment [s, s+M) for M in `lengths` (frames).

    For a segment α of M frames, the optimal path family over the N×M submatrix S[:, α] is found
    by dynamic programming: paths run from the segment's first to its last column with steps
    (1,1), (2,1), (1,2), do not share rows, and a path may start on the row after the previous
    one ended (the "elevator" column). With σ the family's score, ΣL its total number of cells and
    γ its coverage (rows of its induced segments):
        score_n = max(0, (σ − M) / ΣL),  coverage_n = max(0, (γ − M) / N)
    (minus M: the trivial path of α explaining itself), and
        fitness = 2·score_n·coverage_n / (score_n + coverage_n).
    Cells of starts not evaluated (past the end, or skipped by start_stride) are NaN.
    """
    n = ssm.shape[0]
    out = np.full((len(lengths), n), np.nan)
    for i, m in enumerate(lengths):
        if 1 <= m <= n:
            starts = np.arange(0, n - int(m) + 1, start_stride)
            out[i, starts] = _segment_fitness(ssm, int(m), start_stride)
    return out


def _segment_fitness(ssm: np.ndarray, m: int, stride: int) -> np.ndarray:
    """Fitness of the segments [s, s+m) for s = 0, stride, 2·stride, ... (see fitness_scape).

    One DP over the rows for all those segments at once: row n of every submatrix is a strided
    view of SSM row n. The family's cell count and coverage are carried forward along the argmax,
    packed in one integer, instead of backtracking each family.
    """
    n = ssm.shape[0]
    views = np.lib.stride_tricks.sliding_window_view(ssm, m, axis=1)[:, ::stride]  # (N, K, m)
    k = views.shape[1]
    # State (K, m+1): index c+1 = segment column c; index 0 is a -inf sentinel, so that the
    # (1,2) step into column 1 finds nothing. a = best score with the current path at this cell;
    # b = packed (cells so far, completed coverage − current path's start row).
    a0, a1, a2 = (np.full((k, m + 1), -np.inf) for _ in range(3))
    b0, b1, b2 = (np.zeros((k, m + 1), dtype=np.int64) for _ in range(3))
    best = np.empty((k, m - 1))
    e = np.zeros(k)  # elevator: score of the best complete family on rows before this one
    be = np.full(k, _BIAS, dtype=np.int64)
    for row in range(n):
        if row > 0:  # a path that ended on row − 1 hands over to the elevator
            end = a1[:, m]
            take = end > e
            e = np.where(take, end, e)
            be = np.where(take, b1[:, m] + row, be)  # coverage += (row − 1) − start + 1
        s_row = views[row]
        np.add(e, s_row[:, 0], out=a0[:, 1])
        np.subtract(be, row - _CELL, out=b0[:, 1])  # a new path: − start row, one cell
        if m > 1:
            x, y, z = a1[:, 1:m], a2[:, 1:m], a1[:, 0:m - 1]
            np.maximum(x, y, out=best)
            np.maximum(best, z, out=best)
            np.add(best, s_row[:, 1:], out=a0[:, 2:])
            b0[:, 2:] = np.where(x == best, b1[:, 1:m],
                                 np.where(y == best, b2[:, 1:m], b1[:, 0:m - 1]))
            b0[:, 2:] += _CELL
        a0, a1, a2 = a2, a0, a1
        b0, b1, b2 = b2, b0, b1
    end = a1[:, m]
    take = end > e
    score = np.where(take, end, e)
    packed = np.where(take, b1[:, m] + n, be)
    cells = packed // _CELL
    cover = packed - cells * _CELL - _BIAS
    score_n = np.maximum(0.0, (score - m) / np.maximum(cells, 1))
    cover_n = np.maximum(0.0, (cover - m) / n)
    denom = score_n + cover_n
    return np.divide(2 * score_n * cover_n, denom, out=np.zeros(k), where=denom > 0)


def _range_lengths(range_name: str, n: int, cfg: StructureConfig) -> tuple[np.ndarray, int]:
    """Segment lengths (frames) of a named range for a song of n frames, and the start stride."""
    if range_name not in SI_RANGES:
        raise VbgmError(f"unknown structureness range {range_name!r}; "
                        f"choose from {', '.join(SI_RANGES)}")
    lo_s, hi_s = SI_RANGES[range_name]
    lo = max(1, math.ceil(lo_s * cfg.feature_rate - 1e-9))
    hi = min(n, math.floor(hi_s * cfg.feature_rate + 1e-9)) if math.isfinite(hi_s) else n
    stride = max(1, cfg.long_stride) if not math.isfinite(hi_s) else 1
    return np.arange(lo, hi + 1, stride), stride


def structureness_from_chroma(chroma: np.ndarray, chroma_rate: float, range_name: str = "short",
                              config: StructureConfig | None = None) -> float:
    """Structureness indicator (0..1) of a chroma sequence (12, F) at `chroma_rate` Hz.

    SI = the maximum fitness over all segments whose length lies in SI_RANGES[range_name]
    (short 3–8 s, mid 8–15 s, long ≥ 15 s). A high SI means some passage of that length is
    repeated, possibly transposed or at another tempo, over much of the piece. NaN when the piece
    is shorter than the range.
    """
    cfg = config or StructureConfig()
    feats = chroma_features(chroma, chroma_rate, cfg)
    n = feats.shape[1]
    lengths, stride = _range_lengths(range_name, n, cfg)
    if len(lengths) == 0:
        return math.nan
    ssm = self_similarity(feats, cfg)
    return float(np.nanmax(fitness_scape(ssm, lengths, stride)))


def structureness(song: Song, tempo_bpm: float = 120.0, source: str = "notes",
                  range_name: str = DEFAULT_SI_RANGE, config: StructureConfig | None = None,
                  sample_rate: int = 22050, backend: str = "auto") -> float:
    """Structureness indicator of a song played at `tempo_bpm` (see structureness_from_chroma).

    source="notes": chroma straight from the notes (piano roll; fast, deterministic, no drums) —
        what `vbgm evaluate` reports.
    source="audio": the song is rendered (vbgm.render, `backend`) and chroma taken from the STFT,
        as Müller and MusDr do; slower (synthesis) and dependent on the SoundFont.
    The default range is "short" (3–8 s): Table 1 reports a single SI, and the short range is the
    first of MusDr's three and the one most songs (and generated clips) are long enough for.
    """
    cfg = config or StructureConfig()
    if source == "notes":
        chroma = notes_chroma(song, tempo_bpm, cfg.chroma_rate)
    elif source == "audio":
        from vbgm.midi import song_to_score
        from vbgm.render import render_midi

        audio = render_midi(song_to_score(song, tempo_bpm), sample_rate, backend)
        chroma = audio_chroma(audio, sample_rate, cfg.chroma_rate)
    else:
        raise VbgmError(f"structureness source must be 'notes' or 'audio', got {source!r}")
    if len(_pitched(song)) == 0:
        return math.nan
    return structureness_from_chroma(chroma, cfg.chroma_rate, range_name, cfg)


# ---------------------------------------------------------------------------------------------
# Video–music fit (inputs are plain arrays, so nothing here depends on the video module)


def onset_positions(song: Song) -> np.ndarray:
    """Sorted distinct onset sixteenths of the song (all instruments)."""
    return np.unique(song.notes[:, ONSET])


def realised_bar_density(song: Song, n_bars: int) -> np.ndarray:
    """Distinct onset positions per bar (0..16) for bars 0..n_bars-1: the density definition."""
    on = onset_positions(song)
    bar = on // SIXTEENTHS_PER_BAR
    return np.bincount(bar[bar < n_bars], minlength=n_bars)[:n_bars]


def density_fidelity(song: Song, bar_density: np.ndarray) -> float:
    """Spearman rank correlation between requested bar densities and realised ones (−1..1).

    bar_density: one density class (1 + onsets in a whole bar) per bar from bar 0; a pickup bar
    or a last bar cut short by the song's end asks for its share (`structure.bar_share`), as the
    sampler plays it. realised = distinct onset positions in that bar (`realised_bar_density`).
    1 when the music's busiest bars are the ones asked to be busiest. NaN when either side is
    constant (no ranking to agree with) or there are fewer than two bars.
    """
    req = np.asarray(bar_density, dtype=np.float64).ravel()
    got = realised_bar_density(song, len(req)).astype(np.float64)
    for b in {0, len(req) - 1}:  # a pickup bar, a bar cut short by the song's end
        length = bar_length(song.n_sixteenths, b, song.start)
        if 0 < length < SIXTEENTHS_PER_BAR and req[b] >= 1:
            req[b] = 1 + bar_share(int(req[b]) - 1, length)
    if len(req) < 2 or np.ptp(req) == 0 or np.ptp(got) == 0:
        return math.nan
    return float(np.corrcoef(average_ranks(req), average_ranks(got))[0, 1])


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 of the values of x, tied values sharing their mean rank (Spearman's rho is
    the Pearson correlation of these). In numpy: importing scipy.stats costs 0.5-0.7 s of every
    start."""
    x = np.asarray(x).ravel()
    ranks = np.empty(len(x))
    ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
    _, tie, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(tie, weights=ranks) / counts)[tie]


def strength_fidelity(song: Song, beat_sixteenths: np.ndarray, beat_strengths: np.ndarray,
                      instruments: tuple[int, ...] = (1, 2, 3)) -> float:
    """Mean absolute error (notes) between requested strength and realised notes at visual beats.

    For every visual beat (integer sixteenth) and every instrument in `instruments` (default
    drums, piano, guitar: the three the reference forces a beat token for, each with the same
    strength), realised = the number of that instrument's notes starting at that sixteenth, the
    quantity the strength token counts in training. 0 is perfect. NaN without beats.
    """
    beats = np.asarray(beat_sixteenths, dtype=np.int64).ravel()
    want = np.asarray(beat_strengths, dtype=np.float64).ravel()
    if len(beats) != len(want):
        raise VbgmError(f"{len(beats)} visual beats but {len(want)} strengths")
    if len(beats) == 0 or not instruments:
        return math.nan
    notes = song.notes
    errors = []
    for k in instruments:
        on = notes[notes[:, INSTRUMENT] == k, ONSET]
        counts = np.searchsorted(on, beats, side="right") - np.searchsorted(on, beats, "left")
        errors.append(np.abs(counts - want))
    return float(np.mean(errors))


def _beat_distances(song: Song, beat_sixteenths: np.ndarray) -> np.ndarray:
    """Distance (sixteenths) from each visual beat to the nearest note onset; inf without notes."""
    beats = np.asarray(beat_sixteenths, dtype=np.float64).ravel()
    on = onset_positions(song).astype(np.float64)
    if len(on) == 0:
        return np.full(len(beats), np.inf)
    i = np.clip(np.searchsorted(on, beats), 1, len(on)) if len(on) > 1 else np.zeros(
        len(beats), dtype=int)
    before = on[np.maximum(i - 1, 0)]
    after = on[np.minimum(i, len(on) - 1)]
    return np.minimum(np.abs(beats - before), np.abs(beats - after))


def beat_hit_rate(song: Song, beat_sixteenths: np.ndarray, tolerance: float = 0.5) -> float:
    """Share of visual beats with a note onset within one sixteenth (0..1).

    "Within one sixteenth" = inside the one-sixteenth window centred on the beat: distance ≤
    tolerance = 0.5 sixteenth, i.e. on the beat's own grid slot when beats are quantised (pass
    unrounded positions t·tempo/15 for sub-grid beats). NaN without beats.
    """
    d = _beat_distances(song, beat_sixteenths)
    return float(np.mean(d <= tolerance)) if len(d) else math.nan


def beat_align_score(song: Song, beat_sixteenths: np.ndarray, sigma: float = 1.0) -> float:
    """Mean over visual beats of exp(−d²/2σ²), d = sixteenths to the nearest onset (0..1).

    σ = 1 sixteenth by default (125 ms at 120 bpm): an onset on the beat scores 1, one sixteenth
    off 0.61, two off 0.14. To work in seconds, scale: σ_sixteenths = σ_s·tempo/15. NaN without
    beats.
    """
    if sigma <= 0:
        raise VbgmError(f"beat-align sigma must be positive, got {sigma}")
    d = _beat_distances(song, beat_sixteenths)
    return float(np.mean(np.exp(-(d ** 2) / (2 * sigma ** 2)))) if len(d) else math.nan


def music_seconds(song: Song, tempo_bpm: float) -> float:
    """When the last note ends, in seconds from the song's start at `tempo_bpm` (0 for a song
    without notes)."""
    if tempo_bpm <= 0:
        raise VbgmError(f"tempo must be positive, got {tempo_bpm}")
    notes = song.notes
    end = int((notes[:, ONSET] + notes[:, DURATION]).max()) - song.start if len(notes) else 0
    return end * 15.0 / tempo_bpm


def length_error(song: Song, tempo_bpm: float, video_duration_s: float) -> float:
    """|music end − video end| in seconds; the music ends when its last note ends."""
    return abs(music_seconds(song, tempo_bpm) - float(video_duration_s))


@dataclass
class VideoFit:
    """The fit of one generated song to its video (see the functions of the same names)."""

    density_fidelity: float
    strength_fidelity: float
    beat_hit_rate: float
    beat_align: float
    length_error_s: float


def video_fit(song: Song, bar_density: np.ndarray, beat_sixteenths: np.ndarray,
              beat_strengths: np.ndarray, tempo_bpm: float, video_duration_s: float,
              instruments: tuple[int, ...] = (1, 2, 3), sigma: float = 1.0) -> VideoFit:
    """All video–music fit metrics of a song generated for a video, from the video's controls."""
    return VideoFit(
        density_fidelity=density_fidelity(song, bar_density),
        strength_fidelity=strength_fidelity(song, beat_sixteenths, beat_strengths, instruments),
        beat_hit_rate=beat_hit_rate(song, beat_sixteenths),
        beat_align=beat_align_score(song, beat_sixteenths, sigma),
        length_error_s=length_error(song, tempo_bpm, video_duration_s),
    )


# ---------------------------------------------------------------------------------------------
# The paper's three, together


@dataclass
class MusicMetrics:
    """Table 1's metrics of one song."""

    pitch_entropy: float
    grooving_similarity: float
    structureness: float


def music_metrics(song: Song, tempo_bpm: float = 120.0, si_source: str = "notes",
                  si_range: str = DEFAULT_SI_RANGE, seed: int = 0) -> MusicMetrics:
    """Pitch entropy (128 pitches, whole song), grooving similarity and structureness of a song."""
    return MusicMetrics(
        pitch_entropy=pitch_entropy(song),
        grooving_similarity=grooving_similarity(song, seed=seed),
        structureness=structureness(song, tempo_bpm, si_source, si_range),
    )


# ---------------------------------------------------------------------------------------------
# Musicality: a listener's proxy
#
# Fourteen cheap measurements of what a listener hears at once — range, key, harmony, rhythm,
# bass, drums, repetition — each a pure function of a Song, NaN when undefined (no pitched notes,
# no bass, ...). None is "better" on its own: the real data's value is the reference, and a
# generated folder should land near it (see `vbgm evaluate midi REAL GENERATED`).

BEAT_SIXTEENTHS = 4

MUSICALITY: tuple[tuple[str, str], ...] = (
    ("pitch_range", "Pitch range (semitones)"),
    ("n_pitch_classes", "Pitch classes used"),
    ("scale_consistency", "Scale consistency"),
    ("pitch_class_entropy", "Pitch-class entropy (bits)"),
    ("key_clarity", "Key clarity (song)"),
    ("key_clarity_windows", "Key clarity (4 bars)"),
    ("polyphony", "Polyphony (pitches)"),
    ("empty_beat_rate", "Empty beat rate"),
    ("groove_consistency", "Groove consistency"),
    ("bass_median_pitch", "Bass median pitch"),
    ("bass_high_share", "Bass above C4 share"),
    ("drum_kit_share", "Drums on GM kit share"),
    ("dissonance_rate", "Dissonance rate"),
    ("bar_repetition", "Bar repetition"),
)


def _scale_masks() -> np.ndarray:
    """Bool (24, 12): the natural major (rows 0..11) and natural minor (12..23) scales."""
    masks = np.zeros((24, 12), dtype=bool)
    for tonic in range(12):
        masks[tonic, [(tonic + s) % 12 for s in MAJOR_STEPS]] = True
        masks[12 + tonic, [(tonic + s) % 12 for s in MINOR_STEPS]] = True
    return masks


_SCALES = _scale_masks()
# Bool (128, 128): pitch pairs a dissonant interval apart.
_DISSONANT = np.isin(np.subtract.outer(np.arange(128), np.arange(128)) % 12, DISSONANT_INTERVALS)


def pitch_range(song: Song) -> float:
    """Highest minus lowest pitch of the non-drum notes, in semitones (NaN without any)."""
    pitches = _pitched(song)[:, PITCH]
    return float(pitches.max() - pitches.min()) if len(pitches) else math.nan


def n_pitch_classes(song: Song) -> float:
    """How many of the 12 pitch classes the non-drum notes use (NaN without any)."""
    pitches = _pitched(song)[:, PITCH]
    return float(len(np.unique(pitches % 12))) if len(pitches) else math.nan


def scale_consistency(song: Song) -> float:
    """Largest share of non-drum notes inside one major or natural-minor scale (MusPy's).

    1 when the song stays in one key's scale; chromatic or key-less music scores lower.
    """
    hist = pitch_histogram(song, pitch_classes=True)
    total = hist.sum()
    return float((_SCALES @ hist).max() / total) if total else math.nan


def pitch_class_entropy(song: Song) -> float:
    """Entropy (bits) of the 12-bin pitch-class histogram of non-drum note counts (0..3.585)."""
    return pitch_entropy(song, pitch_classes=True)


def _duration_chroma(notes: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, 12) sum of note durations per group and pitch class."""
    hist = np.zeros((n_groups, 12))
    np.add.at(hist, (groups, notes[:, PITCH] % 12), notes[:, DURATION])
    return hist


def pitch_class_durations(song: Song) -> np.ndarray:
    """(12,) sixteenths sounded per pitch class by the non-drum notes: what keys are found by."""
    notes = _pitched(song)
    return _duration_chroma(notes, np.zeros(len(notes), dtype=int), 1)[0]


def key_clarity(song: Song) -> float:
    """Krumhansl–Kessler clarity of the whole song: the best correlation (−1..1) of its
    duration-weighted pitch-class histogram (drums out) with the 24 key profiles.

    High (≳0.8) when one key dominates; low for atonal, chromatic or key-changing music.
    """
    if len(_pitched(song)) == 0:
        return math.nan
    return detect_key(pitch_class_durations(song))[1]


def key_clarity_windows(song: Song, bars: int = 4) -> float:
    """Mean key clarity over consecutive windows of `bars` bars that hold pitched notes.

    Local key clarity: music that modulates keeps it high while the whole-song clarity drops;
    random pitches keep it low everywhere. A note counts in the window it starts in.
    """
    if bars < 1:
        raise VbgmError(f"key clarity window must be at least 1 bar, got {bars}")
    notes = _pitched(song)
    if len(notes) == 0:
        return math.nan
    window = notes[:, ONSET] // (bars * SIXTEENTHS_PER_BAR)
    hist = _duration_chroma(notes, window, int(window.max()) + 1)
    hist = hist[hist.sum(axis=1) > 0]
    centred = hist - hist.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    # A flat histogram suggests no key: clarity 0 (as harmony.key_correlations).
    unit = np.divide(centred, norm, out=np.zeros_like(centred), where=norm >= 1e-12)
    return float((unit @ KEY_PROFILES.T).max(axis=1).mean())


def _sounding(song: Song) -> np.ndarray:
    """Bool (steps, 128): which non-drum pitches sound at each sixteenth, only the steps where
    at least one does (any instrument; the same pitch on two instruments counts once)."""
    notes = _pitched(song)
    if len(notes) == 0:
        return np.zeros((0, 128), dtype=bool)
    start = notes[:, ONSET].astype(np.int64)
    end = start + np.maximum(notes[:, DURATION], 1)
    pitch = np.clip(notes[:, PITCH], 0, 127)
    diff = np.zeros((int(end.max()) + 1, 128), dtype=np.int32)
    np.add.at(diff, (start, pitch), 1)
    np.add.at(diff, (end, pitch), -1)
    roll = np.cumsum(diff, axis=0) > 0
    return roll[roll.any(axis=1)]


def _polyphony(roll: np.ndarray) -> float:
    return float(roll.sum(axis=1).mean()) if len(roll) else math.nan


def polyphony(song: Song) -> float:
    """Mean number of distinct non-drum pitches sounding, over the sixteenths where at least one
    sounds (MusPy's polyphony on the sixteenth grid): 1 for a bare melody, 3 for held triads."""
    return _polyphony(_sounding(song))


def _dissonance(roll: np.ndarray) -> float:
    if len(roll) == 0:
        return math.nan
    x = roll.astype(np.float64)
    together = np.triu(x.T @ x, k=1)  # [p, q], p < q: sixteenths where both sound
    total = together.sum()
    if total == 0:
        return math.nan
    return float(together[_DISSONANT].sum() / total)


def dissonance_rate(song: Song) -> float:
    """Share of sounding pitch pairs that clash, pooled over the song's sixteenths.

    At every sixteenth, every pair of distinct sounding non-drum pitches is one pair; a pair is
    dissonant when its interval mod 12 is 1, 6 or 11 (minor 2nd/9th, tritone, major 7th).
    Result = dissonant pairs / all pairs; NaN when no two pitches ever sound together.
    """
    return _dissonance(_sounding(song))


def empty_beat_rate(song: Song) -> float:
    """Share of the song's beats (quarter notes) on which no note of any instrument starts.

    The song spans its start (after a pickup's rest) to n_sixteenths (or its last onset) rounded
    up to whole beats. Long rests and gaps raise it; NaN for a song of length 0.
    """
    on = song.notes[:, ONSET]
    length = max(song.n_sixteenths, int(on.max()) + 1 if len(on) else 0)
    first = song.start // BEAT_SIXTEENTHS
    n_beats = -(-length // BEAT_SIXTEENTHS)
    if n_beats <= first:
        return math.nan
    hit = np.zeros(n_beats, dtype=bool)
    hit[on // BEAT_SIXTEENTHS] = True
    return float(1.0 - hit[first:].mean())


def groove_consistency(song: Song) -> float:
    """MusPy's groove consistency: 1 − mean over consecutive bars of the Hamming distance of
    their onset vectors / 16 (all instruments, empty bars included). NaN with < 2 bars.

    A last bar cut short by the song's end (and a pickup bar 0) is compared on the sixteenths it
    has: the end of a song (or of an excerpt) is not a change of groove. (On a 23-sixteenth
    clip, a full first bar against the 7 of the second counted 9 empty sixteenths as
    differences.)
    Unlike `grooving_similarity` (all pairs of non-empty bars), it follows the song bar to bar.
    """
    vecs = grooving_vectors(song)
    if len(vecs) < 2:
        return math.nan
    counted = np.ones((len(vecs) - 1, SIXTEENTHS_PER_BAR), dtype=bool)
    counted[0, :song.start] = False  # a pickup bar: the sixteenths it has
    last = bar_length(song.n_sixteenths, len(vecs) - 1)
    if 0 < last < SIXTEENTHS_PER_BAR:
        counted[-1, last:] = False
    return float(1.0 - np.mean((vecs[1:] != vecs[:-1])[counted]))


def _bass_pitches(song: Song) -> np.ndarray:
    return song.notes[song.notes[:, INSTRUMENT] == BASS, PITCH]


def bass_median_pitch(song: Song) -> float:
    """Median MIDI pitch of the bass notes (E1 = 28 .. G3 = 55 is the usual bass register)."""
    pitches = _bass_pitches(song)
    return float(np.median(pitches)) if len(pitches) else math.nan


def bass_high_share(song: Song) -> float:
    """Share of bass notes above middle C (pitch > 60): a bass line drifting into melody range."""
    pitches = _bass_pitches(song)
    return float(np.mean(pitches > 60)) if len(pitches) else math.nan


def drum_kit_share(song: Song) -> float:
    """Share of drum notes on a General MIDI percussion key (35..81); other keys are silent or
    odd sounds on a GM kit. NaN without drums."""
    keys = song.notes[song.notes[:, INSTRUMENT] == DRUMS, PITCH]
    if len(keys) == 0:
        return math.nan
    return float(np.mean((keys >= GM_PERCUSSION[0]) & (keys <= GM_PERCUSSION[1])))


def bar_repetition(song: Song, threshold: float = 0.8) -> float:
    """Share of non-empty bars that recur somewhere else in the song (0..1).

    A bar is its set of note events (slot in the bar, pitch, instrument); bar i recurs when some
    other bar j has Jaccard similarity |i ∩ j| / |i ∪ j| ≥ threshold with it. Songs built from
    repeated phrases score high, wandering ones low. A last bar cut short by the song's end is
    compared with the other bars' events on the sixteenths it has (as `groove_consistency`
    does; so is a pickup bar 0): a riff that starts again as the song ends recurs. NaN with
    fewer than 2 non-empty bars.
    """
    from scipy.sparse import csr_matrix

    notes = song.notes
    if len(notes) == 0:
        return math.nan
    onset = notes[:, ONSET].astype(np.int64)
    bar, slot = onset // SIXTEENTHS_PER_BAR, onset % SIXTEENTHS_PER_BAR
    event = (slot * 128 + np.clip(notes[:, PITCH], 0, 127)) * 8 + notes[:, INSTRUMENT] % 8
    bars, bar_idx = np.unique(bar, return_inverse=True)  # non-empty bars only
    _, event_idx = np.unique(event, return_inverse=True)
    n_bars, n_events = len(bars), int(event_idx.max()) + 1
    if n_bars < 2:
        return math.nan
    pairs = np.unique(bar_idx * n_events + event_idx)  # each bar's events as a set
    b = csr_matrix((np.ones(len(pairs), dtype=np.float64), (pairs // n_events, pairs % n_events)),
                   shape=(n_bars, n_events))
    inter = (b @ b.T).toarray()
    size = np.diag(inter).copy()
    union = size[:, None] + size[None, :] - inter
    close = inter >= threshold * union - 1e-9
    np.fill_diagonal(close, False)
    recurs = close.any(axis=1)
    # A bar with fewer sixteenths, against the other bars' events on the sixteenths it has.
    length = bar_length(song.n_sixteenths, int(bars[-1]))
    partial = [(n_bars - 1, 0, length)] if 0 < length < SIXTEENTHS_PER_BAR else []
    if song.start and bars[0] == 0:  # a pickup bar 0: its last sixteenths
        partial.append((0, song.start, SIXTEENTHS_PER_BAR))
    for i, lo, hi in partial:
        window = np.zeros(n_events)
        window[event_idx[(slot >= lo) & (slot < hi)]] = 1.0
        in_window = np.asarray(b.multiply(window[None, :]).sum(axis=1)).ravel()
        union = size[i] + in_window - inter[i]
        recurs[i] = bool(np.any(np.delete(inter[i] >= threshold * union - 1e-9, i)))
    return float(recurs.mean())


def musicality(song: Song) -> dict[str, float]:
    """All fourteen musicality measurements of a song, keyed as in MUSICALITY."""
    roll = _sounding(song)
    values = {
        "pitch_range": pitch_range(song),
        "n_pitch_classes": n_pitch_classes(song),
        "scale_consistency": scale_consistency(song),
        "pitch_class_entropy": pitch_class_entropy(song),
        "key_clarity": key_clarity(song),
        "key_clarity_windows": key_clarity_windows(song),
        "polyphony": _polyphony(roll),
        "empty_beat_rate": empty_beat_rate(song),
        "groove_consistency": groove_consistency(song),
        "bass_median_pitch": bass_median_pitch(song),
        "bass_high_share": bass_high_share(song),
        "drum_kit_share": drum_kit_share(song),
        "dissonance_rate": _dissonance(roll),
        "bar_repetition": bar_repetition(song),
    }
    return {key: values[key] for key, _ in MUSICALITY}
