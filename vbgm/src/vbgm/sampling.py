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

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from vbgm import corpus_stats, keys, rules, vocab
from vbgm.controls import Controls
from vbgm.corpus_stats import CorpusStats
from vbgm.errors import VbgmError
from vbgm.model import CMT, State, int8_available
from vbgm.request import Request, SamplingConfig, check_seed, check_window
from vbgm.rules import SAMPLED
from vbgm.song import (
    DURATION,
    ONSET,
    SIXTEENTHS_PER_BAR,
    Song,
)
from vbgm.tokens import decode, init_tokens


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
    check_seed(seed)
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
                             free_plan=model.config.ablate_controls, start=controls.start)
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
    init = init[None].expand(candidates, -1, -1).contiguous()
    state = model.init_state(init)
    held = Held(config.window, config.keep)
    cap = int(config.max_tokens_per_sixteenth * controls.n_sixteenths) + 64
    bar = _progress(controls.n_sixteenths) if progress else None
    step = model.stepper(int8)
    for _ in range(cap):
        if all(s.done for s in states):
            break
        if held.full():
            state = held.rebuilt(model, init)
        h, state = step(held.fed(feed), state)
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
        song = finish(decode(tokens), controls.n_sixteenths, controls.start)
        out.append(Generated(tokens=tokens.astype(np.int32), song=song,
                             score=control_fit(song, controls), n_forced_beats=s.n_forced_beats,
                             sections=list(p.sections),
                             key=None if s.key is None else keys.shift_key(s.key, shift_back)))
    return sorted(out, key=lambda g: -g.score)


class Held:
    """The token rows the model's recurrent state holds (`SamplingConfig.window`): once it holds
    `window` of them, `rebuilt` gives the state of the conditioning rows and the last `keep`
    (the model's parallel form), so the model never sees more rows than it learnt from."""

    def __init__(self, window: int, keep: int) -> None:
        check_window(window, keep)
        self.window, self.n = window, 0
        self.recent: deque[np.ndarray] = deque(maxlen=keep if window else 0)

    def fed(self, feed: np.ndarray) -> torch.Tensor:
        """Note the (B, 9) rows about to be fed and return them as a tensor."""
        if self.window:
            self.recent.append(feed.copy())
            self.n += 1
        return torch.from_numpy(feed)

    def full(self) -> bool:
        return self.window > 0 and self.n >= self.window

    def rebuilt(self, model: CMT, init: torch.Tensor) -> State:
        self.n = len(self.recent)
        return model.prefill(init, torch.from_numpy(np.stack(self.recent, 1)))[1]


def row_losses(model: CMT, init: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               window: int = 0, keep: int = 0) -> torch.Tensor:
    """(B, T) loss of known token rows x (targets y) as generation runs the model: the
    recurrent step (float32), the state rebuilt by `Held` (window 0: never). Per row the mean
    over the predicted fields of their cross-entropies, as in training (`CMT.loss`)."""
    model.eval()
    state = model.init_state(init)
    step = model.stepper()
    held, hs = Held(window, keep), []
    for t in range(x.shape[1]):
        if held.full():
            state = held.rebuilt(model, init)
        hs.append(step(held.fed(x[:, t].numpy()), state)[0])
    with torch.no_grad():
        ce = model.row_cross_entropies(torch.stack(hs, 1), y)
    return torch.stack(list(ce.values())).mean(0)


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


def finish(song: Song, n_sixteenths: int, start: int = 0) -> Song:
    """End the song exactly at the last sixteenth: notes are clipped to it and the notes of the
    last onset are held until it (no cut-off chord, no trailing silence after them). `start`:
    the sixteenth of bar 0 it starts on (after a pickup's rest)."""
    notes = song.notes.copy()
    if len(notes):
        notes[:, DURATION] = np.minimum(notes[:, DURATION], n_sixteenths - notes[:, ONSET])
        last = notes[:, ONSET] == notes[:, ONSET].max()
        notes[last, DURATION] = np.clip(n_sixteenths - notes[last, ONSET], 1, SIXTEENTHS_PER_BAR)
    return Song(notes=notes, n_sixteenths=n_sixteenths, genre=song.genre, start=start)


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
