"""The CMT model: compound-word embeddings, causal linear-attention encoder, two-stage heads.

One network, two ways to run it that give the same numbers:

- **parallel** (`forward`, `loss`): the whole sequence at once, for training. Causal linear
  attention is computed in chunks (masked quadratic inside a chunk, a carried key-value state
  across chunks), so memory grows linearly with length.
- **recurrent** (`init_state`, `step`): one token at a time with a per-layer state
  S = sum phi(k) v^T and z = sum phi(k), so each generated token costs O(1).

Facts (field widths, wiring, names) follow ../shared/reference/cmt-spec.md §2; the reference's
released state_dict loads with `load_reference_state_dict`.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vbgm import vocab
from vbgm.atomic import atomic_path
from vbgm.errors import VbgmError
from vbgm.keys import n_key_classes

# Embedding widths of the 7 predicted fields, in column order (barbeat .. strength).
FIELD_WIDTHS: tuple[int, ...] = (64, 32, 64, 512, 128, 32, 64)
# Fields predicted by the six second-stage heads, in head order (column indices).
HEAD_COLUMNS: tuple[int, ...] = (
    vocab.BARBEAT, vocab.DENSITY, vocab.PITCH, vocab.DURATION, vocab.INSTR, vocab.STRENGTH,
)
CONTROL_COLUMNS: tuple[int, ...] = (vocab.DENSITY, vocab.STRENGTH)
EPS = 1e-6  # the linear-attention denominator epsilon of the reference


@dataclass
class CMTConfig:
    """Model size and options. Defaults are the paper's model."""

    n_layer: int = 12
    d_model: int = 512
    n_head: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    field_widths: tuple[int, ...] = FIELD_WIDTHS
    p_beat_width: int = 256
    init_width: int = 64
    max_pos: int = vocab.MAX_SIXTEENTHS  # rows of the sinusoidal table (indexed by i_beat)
    ablate_controls: bool = False  # baseline: no density/strength/p_beat input or prediction
    chunk: int = 64  # chunk length of the parallel linear attention
    checkpoint_layers: bool = False  # recompute layer activations in backward (saves memory)
    keys: str = "none"  # key regime of the initial key slot (`vbgm.keys`): none|augment|normalise

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CMTConfig:
        d = dict(d)
        if "field_widths" in d:
            d["field_widths"] = tuple(d["field_widths"])
        return cls(**d)


CONFIGS: dict[str, CMTConfig] = {
    "paper": CMTConfig(),
    # Sized for ~2 h on 2 CPU cores (benchmarks/bench_model.py): ~3.6 M parameters.
    "small": CMTConfig(n_layer=4, d_model=256, n_head=4, d_ff=1024, dropout=0.05),
    # ~11.5 M parameters (23 MB in float16): GPU-trained, batch-1 decoding ~1.5x small's time.
    "medium": CMTConfig(n_layer=6, d_model=384, n_head=6, d_ff=1536, dropout=0.1),
    # Smoke runs and tests only.
    "tiny": CMTConfig(n_layer=2, d_model=64, n_head=4, d_ff=128, dropout=0.1, chunk=16),
}


def sinusoid_table(n: int, d: int) -> Tensor:
    """(n, d) table: even dims sin(pos*w_k), odd dims cos(pos*w_k), w_k = 10000^(-2k/d)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    w = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * w)
    pe[:, 1::2] = torch.cos(pos * w)
    return pe


def phi(x: Tensor) -> Tensor:
    """The linear-attention feature map elu(x) + 1 (positive)."""
    return F.elu(x) + 1.0


def causal_linear_attention(q: Tensor, k: Tensor, v: Tensor, chunk: int,
                            state: tuple[Tensor, Tensor] | None = None
                            ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Causal linear attention over (B, H, T, dk) feature-mapped q, k and values v.

    out_i = q_i . S_i / (q_i . z_i + eps), S_i = sum_{j<=i} k_j v_j^T, z_i = sum_{j<=i} k_j.
    Done in chunks of `chunk`: a masked quadratic product inside each chunk plus the state
    carried from earlier chunks (an exclusive cumulative sum), so memory is O(T). Returns the
    output and the final (S, z) so a recurrent run can continue from here. Always in float32
    (also under bf16 autocast): the sums run over thousands of positions.
    """
    with torch.autocast(q.device.type, enabled=False):
        return _linear_attention(q.float(), k.float(), v.float(), chunk, state)


def _linear_attention(q: Tensor, k: Tensor, v: Tensor, chunk: int,
                      state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    B, H, T, dk = q.shape
    n = -(-T // chunk)
    pad = n * chunk - T
    if pad:  # zero keys/values add nothing to S or z
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    q, k, v = (t.reshape(B, H, n, chunk, dk) for t in (q, k, v))
    kv = torch.einsum("bhncd,bhnce->bhnde", k, v)  # per-chunk sum k v^T
    ks = k.sum(3)  # (B, H, n, dk)
    S_incl, z_incl = kv.cumsum(2), ks.cumsum(2)
    S_prev, z_prev = S_incl - kv, z_incl - ks  # state before each chunk
    if state is not None:
        S_prev = S_prev + state[0][:, :, None]
        z_prev = z_prev + state[1][:, :, None]
    mask = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    a = torch.einsum("bhncd,bhnmd->bhncm", q, k).masked_fill(~mask, 0.0)
    num = a @ v + q @ S_prev
    den = a.sum(-1) + torch.einsum("bhncd,bhnd->bhnc", q, z_prev)
    out = (num / (den + EPS)[..., None]).reshape(B, H, n * chunk, dk)[:, :, :T]
    S_last, z_last = S_incl[:, :, -1], z_incl[:, :, -1]
    if state is not None:
        S_last, z_last = S_last + state[0], z_last + state[1]
    return out, (S_last, z_last)


class Layer(nn.Module):
    """Post-norm encoder layer: x = norm1(x + attn(x)); x = norm2(x + ff(x))."""

    def __init__(self, c: CMTConfig) -> None:
        super().__init__()
        self.n_head, self.chunk = c.n_head, c.chunk
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)  # fused query/key/value projection
        self.out = nn.Linear(c.d_model, c.d_model)
        self.ff1 = nn.Linear(c.d_model, c.d_ff)
        self.ff2 = nn.Linear(c.d_ff, c.d_model)
        self.norm1 = nn.LayerNorm(c.d_model)
        self.norm2 = nn.LayerNorm(c.d_model)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)
        a, new_state = causal_linear_attention(phi(q), phi(k), v, self.chunk, state)
        x = self.norm1(x + self.drop(self.out(a.transpose(1, 2).reshape(B, T, D))))
        y = self.drop(self.ff2(self.drop(F.gelu(self.ff1(x)))))
        return self.norm2(x + y), new_state


@dataclass
class State:
    """Recurrent state: per layer S (L, B, H, dk, dk) and z (L, B, H, dk)."""

    S: Tensor
    z: Tensor

    def clone(self) -> State:
        return State(self.S.clone(), self.z.clone())

    def select(self, index: Tensor) -> State:
        """The states of the given batch rows (for candidate branching)."""
        return State(self.S[:, index], self.z[:, index])


class CMT(nn.Module):
    """Controllable compound-word music transformer with causal linear attention."""

    def __init__(self, config: CMTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.inputs = [col for col in range(vocab.N_PREDICTED)
                       if not (c.ablate_controls and col in CONTROL_COLUMNS)]
        self.heads_used = [col for col in HEAD_COLUMNS
                           if not (c.ablate_controls and col in CONTROL_COLUMNS)]
        # Conditioning rows (genre, key, instrument) -> d_model, prepended.
        init_classes = (vocab.INIT_CLASSES[0], n_key_classes(c.keys), vocab.INIT_CLASSES[2])
        self.init_emb = nn.ModuleList(nn.Embedding(n, c.init_width) for n in init_classes)
        self.init_proj = nn.Linear(3 * c.init_width, c.d_model)
        # Token fields; an ablated field keeps no table.
        self.emb = nn.ModuleDict({
            str(col): nn.Embedding(vocab.N_CLASSES[col], c.field_widths[col]) for col in self.inputs
        })
        self.in_proj = nn.Linear(sum(c.field_widths[col] for col in self.inputs), c.d_model)
        if not c.ablate_controls:
            self.p_beat_emb = nn.Embedding(vocab.N_CLASSES[vocab.P_BEAT], c.p_beat_width)
            self.p_beat_proj = nn.Linear(c.p_beat_width, c.d_model)
        self.register_buffer("pe", sinusoid_table(c.max_pos, c.d_model), persistent=True)
        self.drop = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.n_layer))
        self.norm = nn.LayerNorm(c.d_model)
        # Two-stage output: type from h; the rest from z = proj(concat(h, type embedding)).
        self.type_head = nn.Linear(c.d_model, vocab.N_CLASSES[vocab.TYPE])
        self.concat_type = nn.Linear(c.d_model + c.field_widths[vocab.TYPE], c.d_model)
        self.heads = nn.ModuleDict({
            str(col): nn.Linear(c.d_model, vocab.N_CLASSES[col]) for col in self.heads_used
        })

    # ---- embeddings ----
    def embed_init(self, init: Tensor) -> Tensor:
        """(B, 7, 3) conditioning rows -> (B, 7, d)."""
        e = [m(init[..., i]) * math.sqrt(m.embedding_dim) for i, m in enumerate(self.init_emb)]
        return self.init_proj(torch.cat(e, -1))

    def embed_tokens(self, x: Tensor) -> Tensor:
        """(B, T, 9) token rows -> (B, T, d): fields + p_beat + position(i_beat), then dropout."""
        e = []
        for col in self.inputs:
            m = self.emb[str(col)]
            e.append(m(x[..., col]) * math.sqrt(m.embedding_dim))
        h = self.in_proj(torch.cat(e, -1))
        if not self.config.ablate_controls:
            pb = self.p_beat_emb
            h = h + self.p_beat_proj(pb(x[..., vocab.P_BEAT]) * math.sqrt(pb.embedding_dim))
        h = h + self.pe[x[..., vocab.I_BEAT].clamp(0, self.pe.shape[0] - 1)]
        return self.drop(h)

    def type_embedding(self, types: Tensor) -> Tensor:
        m = self.emb[str(vocab.TYPE)]
        return m(types) * math.sqrt(m.embedding_dim)

    # ---- parallel form ----
    def encode(self, init: Tensor, x: Tensor | None,
               state: State | None = None) -> tuple[Tensor, State]:
        """Run the encoder over conditioning rows and/or tokens; returns (h, final state).

        With `init` (B, 7, 3) the 7 conditioning positions come first (their outputs dropped);
        with `state` the run continues a recurrent state instead (init must then be None).
        h is (B, T, d) for the token rows of x (T = 0 when x is None).
        """
        parts = [] if init is None else [self.embed_init(init)]
        if x is not None:
            parts.append(self.embed_tokens(x))
        h = torch.cat(parts, 1)
        n_skip = 0 if init is None else init.shape[1]
        S, z = [], []
        for i, layer in enumerate(self.layers):
            st = None if state is None else (state.S[i], state.z[i])
            if self.config.checkpoint_layers and self.training and torch.is_grad_enabled():
                h, (s, zz) = checkpoint(layer, h, st, use_reentrant=False)
            else:
                h, (s, zz) = layer(h, st)
            S.append(s)
            z.append(zz)
        h = self.norm(h[:, n_skip:])
        return h, State(torch.stack(S), torch.stack(z))

    def forward(self, init: Tensor, x: Tensor) -> Tensor:
        """Hidden states (B, T, d) for token rows x (B, T, 9) after conditioning rows init."""
        return self.encode(init, x)[0]

    def type_logits(self, h: Tensor) -> Tensor:
        """Logits of the token type (..., 3)."""
        return self.type_head(h)

    def field_logits(self, h: Tensor, types: Tensor) -> list[Tensor | None]:
        """Logits of the six other fields given the type, in order barbeat, density, pitch,
        duration, instrument, strength. With `ablate_controls` density and strength are None."""
        z = self.concat_type(torch.cat([h, self.type_embedding(types)], -1))
        return [self.heads[str(col)](z) if str(col) in self.heads else None
                for col in HEAD_COLUMNS]

    def loss(self, init: Tensor, x: Tensor, y: Tensor, mask: Tensor
             ) -> tuple[Tensor, dict[str, Tensor]]:
        """Mean over fields of the masked mean cross-entropy of targets y (B, T, 9).

        mask (B, T) is True on real (non-padding) target rows. The field heads see the target
        type (teacher forcing of the two-stage output). Ablated fields are left out.
        """
        m = mask.float()
        n = m.sum().clamp(min=1.0)
        per_field = {name: (ce * m).sum() / n
                     for name, ce in self.row_cross_entropies(self(init, x), y).items()}
        total = torch.stack(list(per_field.values())).mean()
        return total, per_field

    def row_cross_entropies(self, h: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Field name -> (B, T) cross-entropy of targets y (B, T, 9) given hidden states h
        (B, T, d), per row, for every predicted field (ablated ones left out); the field heads
        see the target type."""
        logits: dict[int, Tensor] = {vocab.TYPE: self.type_logits(h)}
        for col, lg in zip(HEAD_COLUMNS, self.field_logits(h, y[..., vocab.TYPE])):
            if lg is not None:
                logits[col] = lg
        out = {}
        for col in sorted(logits):
            lg = logits[col].float()
            out[vocab.FIELD_NAMES[col]] = F.cross_entropy(
                lg.reshape(-1, lg.shape[-1]), y[..., col].reshape(-1), reduction="none"
            ).view(y.shape[:-1])
        return out

    # ---- recurrent form ----
    @torch.no_grad()
    def init_state(self, init: Tensor) -> State:
        """The recurrent state after the 7 conditioning rows, init (B, 7, 3) or (7, 3)."""
        if init.dim() == 2:
            init = init[None]
        return self.encode(init, None)[1]

    @torch.no_grad()
    def prefill(self, init: Tensor, x: Tensor) -> tuple[Tensor, State]:
        """Hidden states for a known prefix x (B, T, 9) and the state after it (parallel form)."""
        return self.encode(init, x)

    def _step_weights(self, int8: bool) -> tuple[list[Tensor], list[tuple[Any, ...]]]:
        """What a batch-1 step needs, prepared: the embedding tables (`_step_tables`) and per
        layer its four linear maps as callables (float32: transposed contiguous weights for
        addmm; int8: per-channel int8 weights packed for `torch.ops.quantized.linear_dynamic`)
        and its layer-norm parameters. Rebuilt whenever a parameter changed: in-place updates
        bump `_version`, moves and casts give new storage."""
        key = (int8, tuple((p.data_ptr(), p._version) for p in self.parameters()))
        cached = getattr(self, "_step_cache", None)
        if cached is None or cached[0] != key:
            make = _int8_linear if int8 else _float_linear
            cached = (key, (self._step_tables(),
                            [tuple(make(lin) for lin in (lay.qkv, lay.out, lay.ff1, lay.ff2))
                             + tuple(t.detach() for t in (lay.norm1.weight, lay.norm1.bias,
                                                          lay.norm2.weight, lay.norm2.bias))
                             for lay in self.layers]))
            self._step_cache = cached
        return cached[1]

    @torch.no_grad()
    def _step_tables(self) -> list[Tensor]:
        """`embed_tokens` (eval) as a sum of looked-up rows: per input field its embedding
        already through its slice of `in_proj` (classes, d), then the p-beat embedding through
        `p_beat_proj` (biases in these two) and the position table. One gather per field
        instead of embeddings, a concatenation and two matrix products each step."""
        tables, start = [], 0
        for col in self.inputs:
            m = self.emb[str(col)]
            w = self.in_proj.weight[:, start:start + m.embedding_dim]
            tables.append(m.weight * math.sqrt(m.embedding_dim) @ w.t())
            start += m.embedding_dim
        tables[0] = tables[0] + self.in_proj.bias
        if not self.config.ablate_controls:
            pb = self.p_beat_emb
            tables.append(self.p_beat_proj(pb.weight * math.sqrt(pb.embedding_dim)))
        return [t.contiguous() for t in tables]

    def _step_embed(self, tokens: Tensor, tables: list[Tensor]) -> Tensor:
        """(B, 9) token rows -> (B, d), equal to `embed_tokens` in eval mode."""
        cols = [*self.inputs] + ([] if self.config.ablate_controls else [vocab.P_BEAT])
        h = self.pe[tokens[:, vocab.I_BEAT].clamp(0, self.pe.shape[0] - 1)]
        for col, table in zip(cols, tables):
            h = h + table[tokens[:, col]]
        return h

    @torch.no_grad()
    def step(self, tokens: Tensor, state: State, int8: bool = False) -> tuple[Tensor, State]:
        """One token row per batch item (B, 9) -> hidden state (B, d) and the updated state.

        O(1) per token: the same layer as `Layer.forward` written for one position, with the
        attention as an update of S and z. The state is updated in place (and returned);
        clone it to branch. Runs in eval semantics (no dropout). int8: the linear maps with
        int8 weights and dynamically quantised inputs (`int8_available()`; the step 2.2x
        faster for `medium` on one CPU thread, mean KL of the field distributions 1e-4).
        """
        return self._step(tokens, state, self._step_weights(int8))

    def stepper(self, int8: bool = False) -> Callable[[Tensor, State], tuple[Tensor, State]]:
        """`step` with its weights prepared once, for a generation loop during which they do not
        change (`step` checks every call that they did not: 10 % of a batch-1 step)."""
        prepared = self._step_weights(int8)
        return lambda tokens, state: self._step(tokens, state, prepared)

    @torch.no_grad()
    def _step(self, tokens: Tensor, state: State,
              prepared: tuple[list[Tensor], list[tuple[Any, ...]]]) -> tuple[Tensor, State]:
        tables, layers = prepared
        x = self._step_embed(tokens, tables)
        B, D = x.shape
        H = self.config.n_head
        dk = D // H
        for i, (qkv_map, out_map, ff1, ff2, g1, c1, g2, c2) in enumerate(layers):
            qkv = qkv_map(x).view(B, 3, H, dk)
            q, k, v = phi(qkv[:, 0]), phi(qkv[:, 1]), qkv[:, 2]
            S = state.S[i].view(B * H, dk, dk)
            S.baddbmm_(k.reshape(B * H, dk, 1), v.reshape(B * H, 1, dk))  # S += k v^T
            z = state.z[i]
            z.add_(k)
            num = torch.bmm(q.reshape(B * H, 1, dk), S).view(B, H, dk)
            den = (q * z).sum(-1, keepdim=True) + EPS
            x = F.layer_norm(out_map((num / den).view(B, D)) + x, (D,), g1, c1)
            x = F.layer_norm(ff2(F.gelu(ff1(x))) + x, (D,), g2, c2)
        return self.norm(x), state


def _float_linear(lin: nn.Linear) -> Callable[[Tensor], Tensor]:
    """x -> lin(x) as one addmm with the weight transposed and contiguous (batch-1 speed)."""
    w, b = lin.weight.detach().t().contiguous(), lin.bias.detach()
    return lambda x: torch.addmm(b, x, w)


def _int8_linear(lin: nn.Linear) -> Callable[[Tensor], Tensor]:
    """x -> lin(x) with the weight quantised to int8 per output channel (symmetric) and x
    quantised on the fly (`torch.ops.quantized.linear_dynamic`)."""
    w = lin.weight.detach().float()
    scales = (w.abs().amax(dim=1).clamp(min=1e-8) / 127).double()
    with warnings.catch_warnings():  # torch 2.13 flags quantised tensors as deprecated
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(w, scales, torch.zeros(len(w), dtype=torch.long), 0,
                                       torch.qint8)
    packed = torch.ops.quantized.linear_prepack(q, lin.bias.detach().float())
    # The overload's compiled function, not the op packet's Python dispatch: 34 µs a call
    # instead of 46 (a 512 × 512 layer, batch 1, one thread); a token takes 24 calls.
    op = torch.ops.quantized.linear_dynamic.default
    linear = getattr(op, "_op", op)
    return lambda x: linear(x, packed)


@torch.no_grad()
def int8_divergences(model: CMT, init: Tensor, rows: Tensor) -> list[float]:
    """KL(float32 || int8) of every field distribution along the teacher-forced token `rows`
    (T, 9) after the conditioning `init` (1, 7, 3): how far the int8 step moves what is drawn."""
    s32, s8 = model.init_state(init), model.init_state(init)
    kls = []
    for r in rows:
        h32, s32 = model.step(r[None], s32)
        h8, s8 = model.step(r[None], s8, int8=True)
        types = r[None, vocab.TYPE]
        for a, b in zip([model.type_logits(h32), *model.field_logits(h32, types)],
                        [model.type_logits(h8), *model.field_logits(h8, types)]):
            if a is not None:
                p, q = F.log_softmax(a, -1), F.log_softmax(b, -1)
                kls.append(float((p.exp() * (p - q)).sum()))
    return kls


def int8_available() -> bool:
    """Whether this torch build has a quantised CPU engine (fbgemm on x86, qnnpack on Arm)."""
    return (torch.backends.quantized.engine not in ("none", "")
            and hasattr(torch, "quantize_per_channel"))


# ---- the reference checkpoint ----
_REF_FIELD_NAMES = ("barbeat", "type", "beat_density", "pitch", "duration", "instr",
                    "onset_density")


def reference_key_map(n_layer: int = 12) -> dict[str, str]:
    """Our parameter name -> reference name (without `module.`), except the fused qkv,
    whose weight/bias are the concatenation of the reference's query/key/value projections."""
    m = {
        "init_emb.0.weight": "init_emb_genre.lut.weight",
        "init_emb.1.weight": "init_emb_key.lut.weight",
        "init_emb.2.weight": "init_emb_instrument.lut.weight",
        "init_proj.weight": "init_in_linear.weight", "init_proj.bias": "init_in_linear.bias",
        "in_proj.weight": "encoder_in_linear.weight", "in_proj.bias": "encoder_in_linear.bias",
        "p_beat_emb.weight": "encoder_emb_time_encoding.lut.weight",
        "p_beat_proj.weight": "encoder_time_linear.weight",
        "p_beat_proj.bias": "encoder_time_linear.bias",
        "pe": "encoder_pos_emb.pe",
        "norm.weight": "transformer_encoder.norm.weight",
        "norm.bias": "transformer_encoder.norm.bias",
        "type_head.weight": "proj_type.weight", "type_head.bias": "proj_type.bias",
        "concat_type.weight": "project_concat_type.weight",
        "concat_type.bias": "project_concat_type.bias",
    }
    for col, name in enumerate(_REF_FIELD_NAMES):
        m[f"emb.{col}.weight"] = f"encoder_emb_{name}.lut.weight"
        if col != vocab.TYPE:
            m[f"heads.{col}.weight"] = f"proj_{name}.weight"
            m[f"heads.{col}.bias"] = f"proj_{name}.bias"
    for i in range(n_layer):
        ours, ref = f"layers.{i}.", f"transformer_encoder.layers.{i}."
        for a, b in (("out", "attention.out_projection"), ("ff1", "linear1"), ("ff2", "linear2"),
                     ("norm1", "norm1"), ("norm2", "norm2")):
            for p in ("weight", "bias"):
                m[f"{ours}{a}.{p}"] = f"{ref}{b}.{p}"
    return m


def load_reference_state_dict(sd: dict[str, Tensor]) -> CMT:
    """A `paper`-config CMT holding the reference's released weights (strict: every key used)."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    config = CMTConfig(**asdict(CONFIGS["paper"]))
    model = CMT(config)
    ours: dict[str, Tensor] = {}
    used: set[str] = set()
    for k, ref in reference_key_map(config.n_layer).items():
        if ref not in sd:
            raise VbgmError(f"reference checkpoint: missing key {ref!r}")
        t = sd[ref]
        ours[k] = t.reshape(config.max_pos, config.d_model) if k == "pe" else t
        used.add(ref)
    for i in range(config.n_layer):
        ref = f"transformer_encoder.layers.{i}.attention."
        for p in ("weight", "bias"):
            names = [f"{ref}{w}_projection.{p}" for w in ("query", "key", "value")]
            missing = [n for n in names if n not in sd]
            if missing:
                raise VbgmError(f"reference checkpoint: missing key {missing[0]!r}")
            ours[f"layers.{i}.qkv.{p}"] = torch.cat([sd[n] for n in names], 0)
            used.update(names)
    extra = sorted(set(sd) - used)
    if extra:
        raise VbgmError(f"reference checkpoint: unexpected keys {extra[:3]}")
    try:
        model.load_state_dict(ours, strict=True)
    except RuntimeError as exc:
        raise VbgmError(f"reference checkpoint: {str(exc).splitlines()[0]}") from exc
    return model


# ---- our checkpoints ----
def save_checkpoint(path: str | Path, model: CMT, config: CMTConfig,
                    extra: dict[str, Any] | None = None, half: bool = False) -> None:
    """Write model weights + config (+ `extra`, e.g. optimizer state) atomically.

    The sinusoidal table is not stored (it is rebuilt). `half=True` stores weights as float16
    (the shipped model: a small file; loading converts back to float32).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if k != "pe"}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {"format": "vbgm-cmt", "version": 1, "config": asdict(config), "model": state,
               "extra": extra or {}, "sha256": weights_digest(state)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the weights as stored (names, dtypes, shapes, bytes): flipped bytes show."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_weights(path: Path, payload: dict[str, Any]) -> None:
    """Refuse damaged weights at load time, not as NaN probabilities in the middle of sampling:
    the stored checksum (checkpoints saved since it exists) and, always, finite values."""
    state = payload.get("model")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise VbgmError(f"{path}: not a vbgm model checkpoint (no weights)")
    stored = payload.get("sha256")
    if stored is not None and stored != weights_digest(state):
        raise VbgmError(f"{path}: damaged checkpoint (the weights do not match their checksum)")
    floats = {name: value for name, value in state.items() if value.is_floating_point()}
    if floats and bool(torch.isfinite(torch.cat([v.reshape(-1) for v in floats.values()])).all()):
        return  # one pass over all the weights; names are looked for only when one is bad
    for name, value in floats.items():
        if not bool(torch.isfinite(value).all()):
            raise VbgmError(f"{path}: damaged checkpoint ({name} has NaN or infinite weights)")


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[CMT, dict[str, Any]]:
    """(model in float32, eval mode; meta = {"config", "extra"}) from a `save_checkpoint` file."""
    path = Path(path)
    if not path.is_file():
        raise VbgmError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise VbgmError(f"{path}: not a readable checkpoint ({exc.__class__.__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != "vbgm-cmt":
        raise VbgmError(f"{path}: not a vbgm model checkpoint")
    _check_weights(path, payload)
    config = CMTConfig.from_dict(payload["config"])
    model = CMT(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"pe"}:
        raise VbgmError(f"{path}: weights do not match the stored config "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    return model, {"config": config, "extra": payload.get("extra", {})}


__all__ = [
    "CMT", "CMTConfig", "CONFIGS", "HEAD_COLUMNS", "State", "causal_linear_attention",
    "load_checkpoint", "load_reference_state_dict", "reference_key_map", "save_checkpoint",
    "sinusoid_table", "weights_digest",
]
