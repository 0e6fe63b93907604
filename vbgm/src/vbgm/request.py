"""What is asked of the sampler: the user's `Request` (genre, instruments, key) and the
`SamplingConfig` (how tokens are drawn, the control degree C, the musical rules).

Free of torch, so a command can check a request and hand it to worker processes without loading
the model's modules (`vbgm.batch`); `vbgm.sampling` is where they are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vbgm import harmony
from vbgm.errors import VbgmError
from vbgm.rules import SAMPLED, Rules
from vbgm.song import DRUMS, GENRE_IDS, GUITAR, INSTRUMENT_IDS, PIANO


def check_seed(seed: int) -> None:
    """A seed is a whole number ≥ 0 (numpy's generators, which draw the controls and the key,
    take no negative seed)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise VbgmError(f"the seed must be a whole number ≥ 0, got {seed!r}")


def check_window(window: int, keep: int) -> None:
    """The model's window (`SamplingConfig.window`) is 0 (off) or holds more rows than the
    `keep` a rebuilt state starts from."""
    if window < 0:
        raise VbgmError(f"window must be 0 (off) or a number of rows, got {window}")
    if window and not 0 < keep < window:
        raise VbgmError(f"keep must be in 1..window-1, got keep {keep}, window {window}")


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn. Temperatures and top-p per field in `SAMPLED` order (type, barbeat,
    density, pitch, duration, instrument, strength); the defaults are the reference's but for
    the pitch temperature, 1.8 rather than 1.0, used when the model is given no key token (with
    the scale pull `Rules.harmony`): at 1.0 the model's songs used few pitches, Table 1's pitch
    entropy 33 % below the data's (`vbgm evaluate table1`; the model card has the figures).

    control: the control degree C in [0, 1], the probability that each control is applied
        (the paper chose 0.7).
    max_tokens_per_sixteenth: hard cap on the sequence length, against run-away generation.
    threads: torch threads during sampling (one is fastest for batch-1 recurrent steps on CPU,
        where thread synchronisation costs more than a 256-wide matrix-vector product).
    rules: the musical rules (registers, drum accents, beat coverage, harmony, repeats).
    int8: the recurrent step with int8 weights where torch has a quantised CPU engine (on by
        default: the step 2.2x faster for the shipped `medium` on one thread, 2.6x for `paper`,
        the same distributions within a mean KL of 1e-4; `benchmarks/bench_int8.py`).
    key_pitch_temperature: the pitch temperature when a key is requested. Given its key token
        the keyed model is sure of its pitches (one pedal note through a whole song at 1.0),
        while the key plan keeps the harmony (chords, bass roots): measured on 18 songs,
        1.3 brings pitch variety and dissonance towards real songs' with the key still found.
    key_offbeat_pitch_temperature: the same for notes between the beats (passing tones).
    window, keep: the model learnt from windows of `window` token rows (the shipped one: 512)
        and is lost past them (its loss 0.26 on the first 512 rows of long songs, 0.97 on the
        next 512, 2.8 past 2048). So once its state holds `window` rows it is rebuilt from the
        conditioning rows and the last `keep`: the loss then stays 0.24-0.26 along the whole song
        (`benchmarks/bench_context.py`), for a rebuild (~40 ms) every window - keep rows. 0 = off.
    """

    temperature: tuple[float, ...] = (1.0, 1.2, 1.0, 1.8, 2.0, 1.0, 1.0)
    top_p: tuple[float, ...] = (0.9, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9)
    control: float = 0.7
    max_tokens_per_sixteenth: float = 12.0
    threads: int = 1  # torch threads while sampling: one step is tiny matrix-vector work
    rules: Rules = Rules()
    int8: bool = True  # int8 weights in the recurrent step (`CMT.step`): faster on a CPU
    key_pitch_temperature: float = 1.3
    key_offbeat_pitch_temperature: float = 2.0
    window: int = 512
    keep: int = 128

    def __post_init__(self) -> None:
        if not 0.0 <= self.control <= 1.0:
            raise VbgmError(f"control degree C must be in [0, 1], got {self.control}")
        check_window(self.window, self.keep)
        if len(self.temperature) != len(SAMPLED) or len(self.top_p) != len(SAMPLED):
            raise VbgmError(f"temperature and top_p need {len(SAMPLED)} values each")


@dataclass(frozen=True)
class Request:
    """What the user asks for: a genre code, the instruments allowed (ids 1..5) and a key
    (0..23, see `vbgm.harmony`; None = the music's own, inferred from its first notes)."""

    genre: int = 0
    instruments: tuple[int, ...] = (1, 2, 3, 4, 5)
    key: int | None = None

    def __post_init__(self) -> None:
        if self.key is not None and not 0 <= self.key < harmony.N_KEYS:
            raise VbgmError(f"key must be 0..{harmony.N_KEYS - 1}, got {self.key}")

    @classmethod
    def parse(cls, genre: str | int = "unknown", instruments: str | Sequence[str] = "all",
              key: int | None = None) -> Request:
        """From user words: a genre name or code, instruments as names (comma list) or 'all',
        and a key (0..23 or None)."""
        if isinstance(genre, str) and not genre.isdigit():
            if genre.lower() not in GENRE_IDS:
                raise VbgmError(f"unknown genre {genre!r}; choose from {', '.join(GENRE_IDS)}")
            g = GENRE_IDS[genre.lower()]
        else:
            g = int(genre)
            if not 0 <= g < len(GENRE_IDS):
                raise VbgmError(f"genre code must be 0..{len(GENRE_IDS) - 1}, got {g}")
        names = instruments.split(",") if isinstance(instruments, str) else list(instruments)
        names = [n.strip().lower() for n in names if n.strip()]
        if names == ["all"] or not names:
            ids = tuple(INSTRUMENT_IDS.values())
        else:
            bad = [n for n in names if n not in INSTRUMENT_IDS]
            if bad:
                raise VbgmError(f"unknown instrument {bad[0]!r}; choose from "
                                f"{', '.join(INSTRUMENT_IDS)}")
            ids = tuple(sorted({INSTRUMENT_IDS[n] for n in names}))
        return cls(genre=g, instruments=ids, key=key)

    @property
    def rhythm_instruments(self) -> tuple[int, ...]:
        """Instruments that carry forced visual beats: the drums when they play (a beat is an
        accent: kick, + crash when strong), else piano and guitar (a chord of chord tones),
        else the first requested instrument."""
        if DRUMS in self.instruments:
            return (DRUMS,)
        rhythm = tuple(k for k in self.instruments if k in (PIANO, GUITAR))
        return rhythm or self.instruments[:1]
