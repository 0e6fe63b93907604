"""Controlled recurrent sampling: the video's controls steer the CMT token by token.

One step = one `CMT.step` (O(1) per token) for a batch of K candidates, then per candidate:

1. the token type is sampled, then the six other fields from the heads conditioned on it
   (temperature + nucleus per field; reference defaults in `SamplingConfig`);
2. the rules of `vbgm.rules` mask and bias the fields: a grammar keeps every candidate a
   well-formed song that ends exactly on time; registers, the drum kit and chord sizes follow the
   corpus (`vbgm.corpus_stats`); each bar has a chord, forced notes are its tones and no chord
   holds a cluster; a requested key pulls pitches to its scale;
3. the controls are injected as the paper's Algorithm 1 says, each with probability C (the control
   degree), drawn once per control: at every Bar the density attribute is replaced by the video's;
   at every visual beat a Beat token is placed on its sixteenth for the requested rhythm
   instruments (the first time the model's own sample would step over it; on drums an accent);
4. the form follows the video (`vbgm.structure`): its cuts start sections, phrases re-play
   earlier bars (fitted to their own density and visual beats), the last bars cadence.

C = 0 is free generation (no control is injected), C = 1 applies every control. The beat-position
class uses floor(100 i / n) + 1 with n the video's length, the same rule as training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vbgm import corpus_stats, harmony, keys, rules, vocab
from vbgm.corpus_stats import CorpusStats
from vbgm.errors import VbgmError
from vbgm.model import CMT, int8_available
from vbgm.rules import SAMPLED, Rules
from vbgm.song import (
    DRUMS,
    DURATION,
    GENRE_IDS,
    GUITAR,
    INSTRUMENT_IDS,
    ONSET,
    PIANO,
    SIXTEENTHS_PER_BAR,
    Song,
)
from vbgm.tokens import decode, init_tokens


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

    def __post_init__(self) -> None:
        if not 0.0 <= self.control <= 1.0:
            raise VbgmError(f"control degree C must be in [0, 1], got {self.control}")
        if len(self.temperature) != len(SAMPLED) or len(self.top_p) != len(SAMPLED):
            raise VbgmError(f"temperature and top_p need {len(SAMPLED)} values each")


@dataclass
class Controls:
    """What the video asks of the music, on the sixteenth grid.

    n_sixteenths: the music's length (the video's length at its tempo).
    bar_density: per bar, the density class 1..17 (0 = no control for that bar).
    beats: (M, 2) int array of (sixteenth, strength class 0..10), ascending; strength 0 beats are
        not forced.
    cuts: sixteenths of the video's hard cuts: the music's sections start at the nearest bar
        lines.
    """

    n_sixteenths: int
    bar_density: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    beats: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    cuts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if self.n_sixteenths < 1:
            raise VbgmError(f"music length must be at least one sixteenth, got {self.n_sixteenths}")
        self.bar_density = np.asarray(self.bar_density, dtype=np.int64).reshape(-1)
        self.beats = np.asarray(self.beats, dtype=np.int64).reshape(-1, 2)
        keep = (self.beats[:, 0] >= 0) & (self.beats[:, 0] < self.n_sixteenths)
        beats = self.beats[keep]
        self.beats = beats[np.argsort(beats[:, 0], kind="stable")]
        self.cuts = np.sort(np.asarray(self.cuts, dtype=np.int64).reshape(-1))

    @property
    def n_bars(self) -> int:
        return -(-self.n_sixteenths // SIXTEENTHS_PER_BAR)

    @classmethod
    def from_analysis(cls, analysis) -> Controls:
        """Controls from a `vbgm.video.VideoAnalysis`."""
        beats = [(b.sixteenth, b.strength) for b in analysis.beats]
        return cls(n_sixteenths=analysis.n_sixteenths,
                   bar_density=[b.density for b in analysis.bars],
                   beats=np.array(beats, dtype=np.int64).reshape(-1, 2),
                   cuts=np.array([b.sixteenth for b in analysis.beats if b.is_cut],
                                 dtype=np.int64))


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


def pitch_temperatures(states: list[rules.State], on_beat: float, config: SamplingConfig
                       ) -> float | torch.Tensor:
    """Per candidate, the pitch temperature of its next note given a key: `on_beat` for a note
    on a quarter note, `config.key_offbeat_pitch_temperature` between the beats."""
    off = config.key_offbeat_pitch_temperature
    if off == on_beat:
        return on_beat
    return torch.tensor([[on_beat if s.slot % 4 == 0 else off] for s in states])


def sample_top_p(logits: torch.Tensor, temperature: float | torch.Tensor, top_p: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Draw one index per row from softmax(logits / t) restricted to the nucleus: the shortest
    list of most likely values whose probability first exceeds top_p. Masked values are -inf.
    temperature: one for all rows, or a (rows, 1) tensor."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass strictly before each value
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass
class Generated:
    """One generated candidate: its tokens (T, 9), the decoded song, its control-fit score, the
    visual beats placed, the first bar of each section and the key it settled in (None if it
    never had enough pitched notes to tell)."""

    tokens: np.ndarray
    song: Song
    score: float
    n_forced_beats: int
    sections: list[int] = field(default_factory=lambda: [0])
    key: int | None = None


def _mask_logits(logits: torch.Tensor, masks: list[np.ndarray],
                 biases: list[np.ndarray | None] | None = None) -> torch.Tensor:
    """Add the rules' biases, then give disallowed values -inf; a row with nothing allowed is a
    field this token does not use (e.g. barbeat on a note) and is left as it is."""
    allowed = np.stack(masks)
    allowed[~allowed.any(axis=1)] = True
    if biases is not None and any(b is not None for b in biases):
        add = np.stack([np.zeros(logits.shape[-1]) if b is None else b for b in biases])
        logits = logits + torch.from_numpy(add).to(logits.dtype)
    return logits.masked_fill(~torch.from_numpy(allowed), float("-inf"))


@torch.inference_mode()
def generate(model: CMT, controls: Controls, request: Request = Request(),
             config: SamplingConfig = SamplingConfig(), candidates: int = 1, seed: int = 0,
             progress: bool = False, stats: CorpusStats | None = None) -> list[Generated]:
    """Generate `candidates` songs in one batch; returns them best-first by control fit.

    stats: the corpus statistics the register rules read (default: the shipped model's corpus).
    The same seed, model and inputs give the same tokens. Each step costs one recurrent model
    step for the whole batch, whatever the length so far.
    """
    if candidates < 1:
        raise VbgmError(f"--candidates must be at least 1, got {candidates}")
    bad = [k for k in request.instruments if not 1 <= k <= 5]
    if bad or not request.instruments:
        raise VbgmError(f"instrument ids must be 1..5, got {list(request.instruments)}")
    stats = stats or corpus_stats.shipped()
    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _generate(model, controls, request, config, candidates, seed, progress, stats)
    finally:
        torch.set_num_threads(previous)


def _generate(model: CMT, controls: Controls, request: Request, config: SamplingConfig,
              candidates: int, seed: int, progress: bool, stats: CorpusStats
              ) -> list[Generated]:
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    # A normalising model samples in C major / A minor; the song is transposed at the end.
    key, shift_back = keys.generation_key(model.config.keys, request.key)
    plans = [rules.make_plan(controls.n_sixteenths, controls.bar_density, controls.beats,
                             controls.cuts, request.instruments, request.rhythm_instruments,
                             key, config.control, rng, stats, config.rules,
                             free_plan=model.config.ablate_controls)
             for _ in range(candidates)]
    states = [rules.State() for _ in range(candidates)]
    rows: list[list[np.ndarray]] = [[rules.start(s, p)] for s, p in zip(states, plans)]
    feed = np.stack([r[0] for r in rows])
    key_token = keys.key_token(key) if model.config.keys != "none" else keys.ANY_KEY
    temperature = list(config.temperature)
    if key_token != keys.ANY_KEY:
        temperature[SAMPLED.index(vocab.PITCH)] = config.key_pitch_temperature
    int8 = config.int8 and int8_available()
    init = torch.from_numpy(init_tokens(request.genre, request.instruments, key_token))
    state = model.init_state(init[None].expand(candidates, -1, -1).contiguous())
    cap = int(config.max_tokens_per_sixteenth * controls.n_sixteenths) + 64
    bar = _progress(controls.n_sixteenths) if progress else None
    step = model.stepper(int8)
    for _ in range(cap):
        if all(s.done for s in states):
            break
        h, state = step(torch.from_numpy(feed), state)
        if all(s.done or s.script for s in states):  # re-played rows: nothing to draw
            _advance_all(states, plans, {}, rows, feed)
            if bar is not None:
                bar.advance_to(max(int(r[-1][vocab.I_BEAT]) for r in rows))
            continue
        masks = [rules.allowed(s, p) for s, p in zip(states, plans)]
        logits = _mask_logits(model.type_logits(h), [m[vocab.TYPE] for m in masks])
        types = sample_top_p(logits, temperature[0], config.top_p[0], gen)
        sampled = {vocab.TYPE: types}
        reads = {col for t, s in zip(types.tolist(), states) if not (s.done or s.script)
                 for col in rules.READS[t]}
        for j, (col, lg) in enumerate(zip(SAMPLED[1:], model.field_logits(h, types)), start=1):
            if col not in reads:  # no candidate's token uses it
                continue
            if lg is None:  # an ablated (baseline) model predicts no density or strength
                sampled[col] = torch.ones(candidates, dtype=torch.long)
                continue
            biases = ([rules.pitch_bias(s, p) for s, p in zip(states, plans)]
                      if col == vocab.PITCH else None)
            col_masks = [m[col] for m in masks]
            if col == vocab.DURATION:  # a note's length may depend on its pitch
                col_masks = [rules.length_allowed(s, p, m, int(pitch))
                             for s, p, m, pitch in zip(states, plans, col_masks,
                                                       sampled[vocab.PITCH])]
            lg = _mask_logits(lg, col_masks, biases)
            t = pitch_temperatures(states, temperature[j], config) if col == vocab.PITCH \
                and key_token != keys.ANY_KEY else temperature[j]
            sampled[col] = sample_top_p(lg, t, config.top_p[j], gen)
        _advance_all(states, plans, sampled, rows, feed)
        if bar is not None:
            bar.advance_to(max(int(r[-1][vocab.I_BEAT]) for r in rows))
    if bar is not None:
        bar.close()
    out = []
    for r, s, p in zip(rows, states, plans):
        tokens = np.vstack([np.stack(r), np.zeros((1, vocab.N_FIELDS), dtype=np.int64)])
        tokens = keys.transpose_rows(tokens, shift_back)
        song = finish(decode(tokens), controls.n_sixteenths)
        out.append(Generated(tokens=tokens.astype(np.int32), song=song,
                             score=control_fit(song, controls), n_forced_beats=s.n_forced_beats,
                             sections=list(p.sections),
                             key=None if s.key is None else keys.shift_key(s.key, shift_back)))
    return sorted(out, key=lambda g: -g.score)


def _advance_all(states: list[rules.State], plans: list[rules.Plan],
                 sampled: dict[int, torch.Tensor], rows: list[list[np.ndarray]],
                 feed: np.ndarray) -> None:
    """Each unfinished candidate takes its drawn token (`rules.advance`; a re-played row ignores
    it) and the row to feed next."""
    for b, (s, p) in enumerate(zip(states, plans)):
        if s.done:
            continue
        row = rules.advance(s, p, {col: int(v[b]) for col, v in sampled.items()})
        if row is None:
            continue
        rows[b].append(row)
        feed[b] = row


def _progress(total: int):
    """The generate stage's progress over the song's sixteenths (`vbgm.progress`: a throttled
    bar on a terminal, one line at the end elsewhere)."""
    from vbgm.progress import stage

    return stage("generate", total, "sixteenth")


def finish(song: Song, n_sixteenths: int) -> Song:
    """End the song exactly at the last sixteenth: notes are clipped to it and the notes of the
    last onset are held until it (no cut-off chord, no trailing silence after them)."""
    notes = song.notes.copy()
    if len(notes):
        notes[:, DURATION] = np.minimum(notes[:, DURATION], n_sixteenths - notes[:, ONSET])
        last = notes[:, ONSET] == notes[:, ONSET].max()
        notes[last, DURATION] = np.clip(n_sixteenths - notes[last, ONSET], 1, SIXTEENTHS_PER_BAR)
    return Song(notes=notes, n_sixteenths=n_sixteenths, genre=song.genre)


def fit_parts(song: Song, controls: Controls) -> tuple[float, float]:
    """(density fidelity, visual-beat hit rate) of a song: the rank correlation of its per-bar
    onset slots with the bar densities (0 when undefined), and the share of visual beats with an
    onset on their sixteenth (0 without beats)."""
    from vbgm.metrics import beat_hit_rate, density_fidelity

    fidelity = density_fidelity(song, controls.bar_density[: controls.n_bars])
    beats = controls.beats[controls.beats[:, 1] > 0, 0]
    hits = beat_hit_rate(song, beats) if len(beats) else 0.0
    return (0.0 if np.isnan(fidelity) else fidelity), hits


def control_fit(song: Song, controls: Controls) -> float:
    """How well a song follows its controls, in [-1, 2]: density fidelity + beat hit rate."""
    return sum(fit_parts(song, controls))


def describe_fit(song: Song, controls: Controls) -> str:
    """The control fit in words, for the console."""
    fidelity, hits = fit_parts(song, controls)
    n_beats = int((controls.beats[:, 1] > 0).sum())
    return (f"control fit {fidelity + hits:.2f} = density fidelity {fidelity:.2f} (how well the "
            f"busiest bars match the most motion, -1..1) + {hits:.0%} of {n_beats} visual beats "
            "on an onset")
