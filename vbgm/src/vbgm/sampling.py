"""Controlled recurrent sampling: the video's controls steer the CMT token by token.

One step = one `CMT.step` (O(1) per token) for a batch of K candidates, then per candidate:

1. the token type is sampled, then the six other fields from the heads conditioned on it
   (temperature + nucleus per field; reference defaults in `SamplingConfig`);
2. a small grammar keeps every candidate a well-formed song: time only moves forward, a Beat is
   followed by exactly `strength` Notes of its instrument with distinct pitches, a bar holds as
   many onset slots as its density says, only the requested instruments appear, nothing sounds
   past the video's last sixteenth, and the song ends (EOS) only in its last bar;
3. the controls are injected as the paper's Algorithm 1 says, each with probability C (the control
   degree), drawn once per control: at every Bar the density attribute is replaced by the video's;
   at every visual beat a Beat token with the video's strength is placed on its sixteenth for the
   requested rhythm instruments (the first time the model's own sample would step over it).

C = 0 is free generation (no control is injected), C = 1 applies every control. The beat-position
class uses floor(100 i / n) + 1 with n the video's length, the same rule as training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vbgm import vocab
from vbgm.errors import VbgmError
from vbgm.model import CMT
from vbgm.song import DURATION, GENRE_IDS, INSTRUMENT_IDS, ONSET, SIXTEENTHS_PER_BAR, Song
from vbgm.tokens import MAX_P_BEAT, decode, init_tokens

# Sampled fields in sampling order: type first, then the heads (`CMT.field_logits` order).
SAMPLED = (vocab.TYPE, vocab.BARBEAT, vocab.DENSITY, vocab.PITCH, vocab.DURATION, vocab.INSTR,
           vocab.STRENGTH)
# Strength per forced beat is capped per instrument: a bass plays at most two notes at once.
MAX_FORCED_STRENGTH = {1: 10, 2: 6, 3: 6, 4: 2, 5: 4}
# Density of the first Bar when it is not controlled: it has no model prediction (training never
# predicts the first row), so a typical value of the training data is used.
FREE_FIRST_DENSITY = 9


@dataclass(frozen=True)
class SamplingConfig:
    """How tokens are drawn. Temperatures and top-p per field in `SAMPLED` order (type, barbeat,
    density, pitch, duration, instrument, strength); the defaults are the reference's.

    control: the control degree C in [0, 1], the probability that each control is applied
        (the paper chose 0.7).
    max_tokens_per_sixteenth: hard cap on the sequence length, against run-away generation.
    threads: torch threads during sampling (one is fastest for batch-1 recurrent steps on CPU,
        where thread synchronisation costs more than a 256-wide matrix-vector product).
    """

    temperature: tuple[float, ...] = (1.0, 1.2, 1.0, 1.0, 2.0, 1.0, 1.0)
    top_p: tuple[float, ...] = (0.9, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9)
    control: float = 0.7
    max_tokens_per_sixteenth: float = 12.0
    threads: int = 1  # torch threads while sampling: one step is tiny matrix-vector work

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
    """

    n_sixteenths: int
    bar_density: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    beats: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))

    def __post_init__(self) -> None:
        if self.n_sixteenths < 1:
            raise VbgmError(f"music length must be at least one sixteenth, got {self.n_sixteenths}")
        self.bar_density = np.asarray(self.bar_density, dtype=np.int64).reshape(-1)
        self.beats = np.asarray(self.beats, dtype=np.int64).reshape(-1, 2)
        keep = (self.beats[:, 0] >= 0) & (self.beats[:, 0] < self.n_sixteenths)
        beats = self.beats[keep]
        self.beats = beats[np.argsort(beats[:, 0], kind="stable")]

    @property
    def n_bars(self) -> int:
        return -(-self.n_sixteenths // SIXTEENTHS_PER_BAR)

    @classmethod
    def from_analysis(cls, analysis) -> Controls:
        """Controls from a `vbgm.video.VideoAnalysis`."""
        beats = [(b.sixteenth, b.strength) for b in analysis.beats]
        return cls(n_sixteenths=analysis.n_sixteenths,
                   bar_density=[b.density for b in analysis.bars],
                   beats=np.array(beats, dtype=np.int64).reshape(-1, 2))


@dataclass(frozen=True)
class Request:
    """What the user asks for: a genre code and the instruments allowed (ids 1..5)."""

    genre: int = 0
    instruments: tuple[int, ...] = (1, 2, 3, 4, 5)

    @classmethod
    def parse(cls, genre: str | int = "unknown", instruments: str | Sequence[str] = "all"
              ) -> Request:
        """From user words: a genre name or code, instruments as names (comma list) or 'all'."""
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
        return cls(genre=g, instruments=ids)

    @property
    def rhythm_instruments(self) -> tuple[int, ...]:
        """Instruments that carry forced visual beats: the requested ones but bass and strings,
        unless nothing else was requested."""
        rhythm = tuple(k for k in self.instruments if k in (1, 2, 3))
        return rhythm or self.instruments[:1]


def sample_top_p(logits: torch.Tensor, temperature: float, top_p: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Draw one index per row from softmax(logits / t) restricted to the nucleus: the shortest
    list of most likely values whose probability first exceeds top_p. Masked values are -inf."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass strictly before each value
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class _Candidate:
    """The grammar and control state of one sequence being generated."""

    def __init__(self, controls: Controls, request: Request, control: float,
                 rng: np.random.Generator, free_plan: bool = False) -> None:
        self.c = controls
        # A model without control attributes (the ablation baseline) plans neither note counts
        # nor bar densities: its groups end when it says so and its bars take any slots.
        self.free_plan = free_plan
        self.instruments = request.instruments
        self.rhythm = request.rhythm_instruments
        self.n = controls.n_sixteenths
        self.last_bar = controls.n_bars - 1
        # One draw per control, made up front: reproducible and independent of the model.
        has_density = np.zeros(controls.n_bars, dtype=bool)
        has_density[: len(controls.bar_density)] = controls.bar_density[: controls.n_bars] > 0
        self.density_on = has_density & (rng.random(controls.n_bars) < control)
        beats = controls.beats[controls.beats[:, 1] > 0]
        self.beats = beats[rng.random(len(beats)) < control]
        self.next_beat = 0  # index into self.beats of the first visual beat not yet placed
        self.forced_left: list[int] = []  # instruments still to place on the pending beat
        self.rows: list[np.ndarray] = []
        self.done = False
        self.bar = -1
        self.slot = -1
        self.instr = 0
        self.notes_left = 0  # notes still owed to the current Beat
        self.group_pitches: set[int] = set()
        self.slot_instruments: set[int] = set()
        self.slots_left = 0  # onset slots the current bar still plans (its density - 1 - used)
        self.n_forced_beats = 0

    # ---- time and controls ----
    def time(self, barbeat: int) -> int:
        """Absolute sixteenth of a metrical token with this barbeat value."""
        if barbeat == vocab.BAR:
            return (self.bar + 1) * SIXTEENTHS_PER_BAR
        return self.bar * SIXTEENTHS_PER_BAR + barbeat - 1

    def pending_beat(self) -> int | None:
        """The sixteenth of the next visual beat still to place, or None."""
        while self.next_beat < len(self.beats) and not self.forced_left \
                and self.beats[self.next_beat, 0] < self.bar * SIXTEENTHS_PER_BAR + self.slot:
            self.next_beat += 1  # passed without being placed (e.g. an earlier slot was full)
        if self.next_beat < len(self.beats):
            return int(self.beats[self.next_beat, 0])
        return None

    def row(self, barbeat: int, typ: int, density: int, pitch: int, duration: int, instr: int,
            strength: int, i: int) -> np.ndarray:
        p = min(100 * i // self.n + 1, MAX_P_BEAT)
        return np.array([barbeat, typ, density, pitch, duration, instr, strength, p, i],
                        dtype=np.int64)

    def start(self) -> np.ndarray:
        """The first token: the Bar of bar 0."""
        density = int(self.c.bar_density[0]) if self.density_on[0] else FREE_FIRST_DENSITY
        return self.accept_bar(density)

    # ---- masks for the next sample ----
    def masks(self) -> dict[int, np.ndarray]:
        """Allowed values per sampled field (boolean arrays), given the state."""
        m = {col: np.ones(vocab.N_CLASSES[col], dtype=bool) for col in SAMPLED}
        typ = m[vocab.TYPE]
        if self.notes_left > 0:
            typ[:] = False
            typ[vocab.TYPE_NOTE] = True
        else:
            typ[vocab.TYPE_NOTE] = self.free_plan and self.instr > 0
            typ[vocab.TYPE_EOS] = False  # decided below, with the metrical choices
        # Notes: a real pitch not yet in this group, a duration that ends by the last sixteenth.
        m[vocab.PITCH][0] = False
        for p in self.group_pitches:
            m[vocab.PITCH][p] = False
        onset = self.bar * SIXTEENTHS_PER_BAR + self.slot
        longest = max(1, min(SIXTEENTHS_PER_BAR, self.n - onset))
        m[vocab.DURATION][:2] = False  # classes 0 and 1 are no length
        m[vocab.DURATION][longest + 2:] = False
        m[vocab.STRENGTH][0] = False
        ins = np.zeros(vocab.N_CLASSES[vocab.INSTR], dtype=bool)
        ins[list(self.instruments)] = True
        m[vocab.INSTR] = ins
        # Metrical tokens: forward in time, as many new slots as the bar's density plans.
        bb = m[vocab.BARBEAT]
        bb[0] = False
        bar_start = self.bar * SIXTEENTHS_PER_BAR
        last_slot = min(SIXTEENTHS_PER_BAR, self.n - bar_start) - 1
        beat = self.pending_beat()
        beat_slot = beat - bar_start if beat is not None and beat < bar_start + 16 else None
        # A new slot must leave room for the slots the bar still plans after it.
        if self.free_plan:  # no density plan: any later slot, a new bar at any time
            limit = last_slot
        elif self.slots_left > 0:
            limit = last_slot - self.slots_left + 1
        else:
            limit = self.slot
        new = np.zeros(SIXTEENTHS_PER_BAR, dtype=bool)
        new[self.slot + 1: limit + 1] = True
        if beat_slot is not None:  # a waiting visual beat is never skipped: slots up to it
            new[beat_slot:] = False
            new[beat_slot] = beat_slot <= limit or not new.any()
        bb[1:SIXTEENTHS_PER_BAR + 1] = new
        if self.slot >= 0 and set(self.instruments) - self.slot_instruments:
            bb[self.slot + 1] = True  # another instrument on the same slot
        room = (not self.free_plan and self.slots_left > 0
                and self.slot < last_slot - self.slots_left + 1)
        bb[vocab.BAR] = self.bar < self.last_bar and not room
        if self.notes_left == 0:
            # EOS only in the last bar, its plan met and no visual beat left to place.
            typ[vocab.TYPE_EOS] = (self.bar >= self.last_bar and self.slot >= 0 and not room
                                   and beat is None) or not bb.any()  # or nothing else fits
            typ[vocab.TYPE_METRIC] = bb.any()
        return m

    # ---- accepting a sampled token ----
    def accept_bar(self, density: int) -> np.ndarray:
        self.bar += 1
        self.slot, self.instr = -1, 0
        self.slot_instruments = set()
        if self.bar < len(self.density_on) and self.density_on[self.bar]:
            density = int(self.c.bar_density[self.bar])
        density = int(np.clip(density, 1, vocab.N_CLASSES[vocab.DENSITY] - 1))
        self.slots_left = SIXTEENTHS_PER_BAR if self.free_plan else density - 1
        if self.bar == self.last_bar:
            self.slots_left = max(self.slots_left, 1)  # the music sounds until the very end
        i = self.bar * SIXTEENTHS_PER_BAR
        return self.row(vocab.BAR, vocab.TYPE_METRIC, density, 0, 0, 0, 0, i)

    def accept_beat(self, slot: int, instr: int, strength: int) -> np.ndarray:
        if slot != self.slot:
            self.slots_left -= 1
            self.slot_instruments = set()
        self.slot, self.instr = slot, instr
        self.slot_instruments.add(instr)
        self.notes_left = 1 if self.free_plan else strength
        self.group_pitches = set()
        i = self.bar * SIXTEENTHS_PER_BAR + slot
        density = max(self.slots_left, 0) + 1  # slots still to come in the bar, + 1
        return self.row(slot + 1, vocab.TYPE_METRIC, density, 0, 0, instr, strength, i)

    def accept(self, s: dict[int, int]) -> np.ndarray | None:
        """Turn one sampled token into the row to feed back (forcing controls), or None at the
        end of the song."""
        typ = s[vocab.TYPE]
        if typ == vocab.TYPE_EOS:
            self.done = True
            return None
        if typ == vocab.TYPE_NOTE:
            self.notes_left = max(self.notes_left - 1, 0)
            self.group_pitches.add(s[vocab.PITCH])
            i = self.bar * SIXTEENTHS_PER_BAR + self.slot
            return self.row(0, vocab.TYPE_NOTE, 0, s[vocab.PITCH], s[vocab.DURATION], self.instr,
                            0, i)
        barbeat = s[vocab.BARBEAT]
        beat = self.pending_beat()
        if beat is not None and self.time(barbeat) >= beat \
                and beat < (self.bar + 1) * SIXTEENTHS_PER_BAR:
            return self.force_beat(beat)
        if barbeat == vocab.BAR:
            return self.accept_bar(s[vocab.DENSITY])
        slot = barbeat - 1
        instr = s[vocab.INSTR]
        if slot == self.slot and instr in self.slot_instruments:
            instr = min(set(self.instruments) - self.slot_instruments)
        return self.accept_beat(slot, instr, s[vocab.STRENGTH])

    def force_beat(self, sixteenth: int) -> np.ndarray:
        """Place the pending visual beat for the next rhythm instrument."""
        if not self.forced_left:
            self.forced_left = list(self.rhythm)
        instr = self.forced_left.pop(0)
        strength = int(min(self.beats[self.next_beat, 1], MAX_FORCED_STRENGTH[instr]))
        if not self.forced_left:
            self.next_beat += 1
        bar = sixteenth // SIXTEENTHS_PER_BAR
        assert bar == self.bar, "a visual beat is always placed inside its own bar"
        slot = sixteenth % SIXTEENTHS_PER_BAR
        if slot != self.slot:
            self.slots_left = max(self.slots_left, 1)  # the video's beat adds its own slot
        self.n_forced_beats += 1
        return self.accept_beat(slot, instr, strength)


@dataclass
class Generated:
    """One generated candidate: its tokens (T, 9), the decoded song and its control-fit score."""

    tokens: np.ndarray
    song: Song
    score: float
    n_forced_beats: int


def _mask_logits(logits: torch.Tensor, masks: list[np.ndarray]) -> torch.Tensor:
    """Disallowed values get -inf; a row with nothing allowed is a field this token does not
    use (e.g. barbeat on a note) and is left as it is."""
    allowed = np.stack(masks)
    allowed[~allowed.any(axis=1)] = True
    allowed = torch.from_numpy(allowed)
    return logits.masked_fill(~allowed, float("-inf"))


@torch.inference_mode()
def generate(model: CMT, controls: Controls, request: Request = Request(),
             config: SamplingConfig = SamplingConfig(), candidates: int = 1, seed: int = 0,
             progress: bool = False) -> list[Generated]:
    """Generate `candidates` songs in one batch; returns them best-first by control fit.

    The same seed, model and inputs give the same tokens. Each step costs one recurrent model
    step for the whole batch, whatever the length so far.
    """
    if candidates < 1:
        raise VbgmError(f"--candidates must be at least 1, got {candidates}")
    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _generate(model, controls, request, config, candidates, seed, progress)
    finally:
        torch.set_num_threads(previous)


def _generate(model: CMT, controls: Controls, request: Request, config: SamplingConfig,
              candidates: int, seed: int, progress: bool) -> list[Generated]:
    bad = [k for k in request.instruments if not 1 <= k <= 5]
    if bad or not request.instruments:
        raise VbgmError(f"instrument ids must be 1..5, got {list(request.instruments)}")
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    free_plan = model.config.ablate_controls
    cands = [_Candidate(controls, request, config.control, rng, free_plan)
             for _ in range(candidates)]
    init = torch.from_numpy(init_tokens(request.genre, request.instruments))
    state = model.init_state(init[None].expand(candidates, -1, -1).contiguous())
    feed = np.stack([c.start() for c in cands])
    for c, r in zip(cands, feed):
        c.rows.append(r.copy())
    cap = int(config.max_tokens_per_sixteenth * controls.n_sixteenths) + 64
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=controls.n_sixteenths, desc="generate", unit="16th", leave=False)
    for _ in range(cap):
        if all(c.done for c in cands):
            break
        h, state = model.step(torch.from_numpy(feed), state)
        masks = [c.masks() for c in cands]
        logits = _mask_logits(model.type_logits(h), [m[vocab.TYPE] for m in masks])
        types = sample_top_p(logits, config.temperature[0], config.top_p[0], gen)
        sampled = {vocab.TYPE: types}
        for j, (col, lg) in enumerate(zip(SAMPLED[1:], model.field_logits(h, types)), start=1):
            if lg is None:  # an ablated (baseline) model predicts no density or strength
                sampled[col] = torch.ones(candidates, dtype=torch.long)
                continue
            lg = _mask_logits(lg, [m[col] for m in masks])
            sampled[col] = sample_top_p(lg, config.temperature[j], config.top_p[j], gen)
        for b, c in enumerate(cands):
            if c.done:
                continue
            row = c.accept({col: int(v[b]) for col, v in sampled.items()})
            if row is None:
                continue
            c.rows.append(row)
            feed[b] = row
        if bar is not None:
            bar.n = max(int(c.rows[-1][vocab.I_BEAT]) for c in cands)
            bar.refresh()
    if bar is not None:
        bar.close()
    out = []
    for c in cands:
        tokens = np.vstack([np.stack(c.rows), np.zeros((1, vocab.N_FIELDS), dtype=np.int64)])
        song = finish(decode(tokens), controls.n_sixteenths)
        out.append(Generated(tokens=tokens.astype(np.int32), song=song,
                             score=control_fit(song, controls), n_forced_beats=c.n_forced_beats))
    return sorted(out, key=lambda g: -g.score)


def finish(song: Song, n_sixteenths: int) -> Song:
    """End the song exactly at the last sixteenth: notes are clipped to it and the notes of the
    last onset are held until it (no cut-off chord, no trailing silence after them)."""
    notes = song.notes.copy()
    if len(notes):
        notes[:, DURATION] = np.minimum(notes[:, DURATION], n_sixteenths - notes[:, ONSET])
        last = notes[:, ONSET] == notes[:, ONSET].max()
        notes[last, DURATION] = np.clip(n_sixteenths - notes[last, ONSET], 1, SIXTEENTHS_PER_BAR)
    return Song(notes=notes, n_sixteenths=n_sixteenths, genre=song.genre)


def control_fit(song: Song, controls: Controls) -> float:
    """How well a song follows its controls, in [-1, 2]: the density fidelity (rank correlation of
    per-bar onset slots with the bar densities; 0 when undefined) plus the visual-beat hit rate."""
    from vbgm.metrics import beat_hit_rate, density_fidelity

    fidelity = density_fidelity(song, controls.bar_density[: controls.n_bars])
    beats = controls.beats[controls.beats[:, 1] > 0, 0]
    hits = beat_hit_rate(song, beats) if len(beats) else 0.0
    return (0.0 if np.isnan(fidelity) else fidelity) + hits
