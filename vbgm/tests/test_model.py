"""The CMT model: the two attention forms agree, the reference checkpoint lands where it belongs,
the loss is masked, checkpoints round-trip, and the model can learn (overfit one real song)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from vbgm.errors import VbgmError
from vbgm.midi import load_song
from vbgm.model import (
    CMT,
    CONFIGS,
    CMTConfig,
    causal_linear_attention,
    load_checkpoint,
    load_reference_state_dict,
    save_checkpoint,
    sinusoid_table,
)

from vbgm import tokens, vocab

TSV = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cmt-state-dict.tsv"
TINY = CMTConfig(n_layer=2, d_model=64, n_head=4, d_ff=128, dropout=0.0, chunk=8)


pytestmark = pytest.mark.usefixtures("one_thread")


def random_rows(g: torch.Generator, B: int, T: int) -> torch.Tensor:
    """(B, T, 9) random token rows, i_beat over the whole position table."""
    n = list(vocab.N_CLASSES[:8]) + [vocab.MAX_SIXTEENTHS]
    return torch.stack([torch.randint(0, k, (B, T), generator=g) for k in n], -1)


def random_init(g: torch.Generator, B: int) -> torch.Tensor:
    return torch.stack([torch.randint(0, k, (B, 7), generator=g) for k in vocab.INIT_CLASSES], -1)


@pytest.fixture(scope="module")
def real_song_rows(midi_root: Path) -> np.ndarray:
    """A real multi-instrument song, tokenised."""
    song, _ = load_song(midi_root / "simutrans" / "01-Simutrans-Main-Theme.mid")
    rows = tokens.encode(song)
    assert len(rows) > 300
    return rows


def naive_causal_linear_attention(q, k, v):
    """O(T^2) definition: out_i = sum_{j<=i} (q_i.k_j) v_j / (sum_{j<=i} q_i.k_j + eps)."""
    a = (q @ k.transpose(-1, -2)).tril()
    return (a @ v) / (a.sum(-1, keepdim=True) + 1e-6)


@pytest.mark.parametrize("chunk", [1, 5, 16, 64])
def test_chunked_attention_matches_quadratic_definition(chunk):
    g = torch.Generator().manual_seed(chunk)
    q, k = (F.elu(torch.randn(2, 3, 37, 8, generator=g)) + 1 for _ in range(2))
    v = torch.randn(2, 3, 37, 8, generator=g)
    out, (S, z) = causal_linear_attention(q, k, v, chunk)
    assert (out - naive_causal_linear_attention(q, k, v)).abs().max() < 1e-5
    assert torch.allclose(S, k.transpose(-1, -2) @ v, atol=1e-4)
    assert torch.allclose(z, k.sum(2), atol=1e-4)


@pytest.mark.parametrize("ablate", [False, True])
def test_parallel_and_recurrent_agree_on_random_rows(ablate):
    torch.manual_seed(0)
    model = CMT(CMTConfig(**{**TINY.__dict__, "ablate_controls": ablate})).eval()
    g = torch.Generator().manual_seed(1)
    init, x = random_init(g, 3), random_rows(g, 3, 45)  # 45: not a multiple of the chunk
    with torch.no_grad():
        h = model(init, x)
    state = model.init_state(init)
    steps = [model.step(x[:, t], state)[0] for t in range(x.shape[1])]
    assert (torch.stack(steps, 1) - h).abs().max() <= 1e-4
    # A prefix run in parallel continues recurrently from its state.
    h_pre, state = model.prefill(init, x[:, :20])
    assert (h_pre - h[:, :20]).abs().max() <= 1e-4
    assert (model.step(x[:, 20], state)[0] - h[:, 20]).abs().max() <= 1e-4
    # Changed weights (an optimiser step) reach the recurrent form's packed copy.
    with torch.no_grad():
        model.layers[0].ff1.weight.mul_(1.5)
        h = model(init, x[:, :3])
    state = model.init_state(init)
    assert (model.step(x[:, 0], state)[0] - h[:, 0]).abs().max() <= 1e-4


def test_parallel_and_recurrent_agree_on_a_real_song(real_song_rows):
    torch.manual_seed(0)
    model = CMT(CMTConfig(n_layer=3, d_model=128, n_head=4, d_ff=256, dropout=0.0)).eval()
    x = torch.from_numpy(real_song_rows[:300].astype(np.int64))[None]
    init = torch.from_numpy(tokens.ANY_INIT.astype(np.int64))[None]
    with torch.no_grad():
        h = model(init, x)
        want = model.type_logits(h)
    state = model.init_state(init)
    got = torch.stack([model.type_logits(model.step(x[:, t], state)[0])
                       for t in range(x.shape[1])], 1)
    assert (got - want).abs().max() <= 1e-4


def test_paper_config_has_the_reference_parameter_count():
    model = CMT(CONFIGS["paper"])
    assert sum(p.numel() for p in model.parameters()) == 39_006_324
    assert model.pe.shape == (20000, 512)


def test_sinusoid_table_follows_the_spec():
    pe = sinusoid_table(100, 512)
    pos, k = 37, 5
    w = 10000 ** (-2 * k / 512)
    assert pe[pos, 2 * k] == pytest.approx(math.sin(pos * w), abs=1e-6)
    assert pe[pos, 2 * k + 1] == pytest.approx(math.cos(pos * w), abs=1e-6)


# ---- the reference checkpoint ----
def reference_keys() -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for line in TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _ = line.split("\t")
        out.append((key, tuple(int(s) for s in shape.split("x"))))
    return out


def random_reference_state_dict() -> dict[str, torch.Tensor]:
    """Every key of the released checkpoint (with `module.`), distinct random values."""
    g = torch.Generator().manual_seed(7)
    sd = {}
    for key, shape in reference_keys():
        if key.endswith("norm1.weight") or key.endswith("norm2.weight") or key.endswith(
                "norm.weight"):
            t = 1 + 0.2 * torch.randn(shape, generator=g)
        elif len(shape) == 2 and ".lut." not in key:  # Linear weight: fan-in scaling
            t = torch.randn(shape, generator=g) / math.sqrt(shape[1])
        else:
            t = torch.randn(shape, generator=g) * (0.2 if len(shape) == 1 else 1.0)
        sd["module." + key] = t
    return sd


def reference_forward(sd, init, x, y_type):
    """The reference wiring written directly from cmt-spec.md §2, on the raw state dict."""
    P = {k.removeprefix("module."): v for k, v in sd.items()}

    def emb(name, idx):
        w = P[f"{name}.lut.weight"]
        return w[idx] * math.sqrt(w.shape[1])

    def lin(name, t):
        return t @ P[name + ".weight"].T + P[name + ".bias"]

    def norm(name, t):
        return F.layer_norm(t, t.shape[-1:], P[name + ".weight"], P[name + ".bias"])

    i = lin("init_in_linear", torch.cat([emb("init_emb_genre", init[..., 0]),
                                          emb("init_emb_key", init[..., 1]),
                                          emb("init_emb_instrument", init[..., 2])], -1))
    names = ["barbeat", "type", "beat_density", "pitch", "duration", "instr", "onset_density"]
    e = torch.cat([emb(f"encoder_emb_{n}", x[..., c]) for c, n in enumerate(names)], -1)
    h = (lin("encoder_in_linear", e)
         + lin("encoder_time_linear", emb("encoder_emb_time_encoding", x[..., 7]))
         + P["encoder_pos_emb.pe"][0, x[..., 8]])
    h = torch.cat([i, h], 1)
    B, L, D = h.shape
    for n in range(12):
        pre = f"transformer_encoder.layers.{n}."
        q, k, v = (lin(pre + f"attention.{w}_projection", h).view(B, L, 8, 64).transpose(1, 2)
                   for w in ("query", "key", "value"))
        a = naive_causal_linear_attention(F.elu(q) + 1, F.elu(k) + 1, v)
        h = norm(pre + "norm1", h + lin(pre + "attention.out_projection",
                                         a.transpose(1, 2).reshape(B, L, D)))
        h = norm(pre + "norm2", h + lin(pre + "linear2", F.gelu(lin(pre + "linear1", h))))
    h = norm("transformer_encoder.norm", h)[:, 7:]
    z = lin("project_concat_type", torch.cat([h, emb("encoder_emb_type", y_type)], -1))
    heads = [lin(f"proj_{n}", z) for n in ("barbeat", "beat_density", "pitch", "duration",
                                            "instr", "onset_density")]
    return lin("proj_type", h), heads


def test_reference_state_dict_loads_and_gives_the_reference_logits():
    sd = random_reference_state_dict()
    assert len(sd) == 228
    model = load_reference_state_dict(sd).eval()
    g = torch.Generator().manual_seed(3)
    init, x = random_init(g, 2), random_rows(g, 2, 24)
    y_type = torch.randint(0, 3, (2, 24), generator=g)
    want_type, want_heads = reference_forward(sd, init, x, y_type)
    with torch.no_grad():
        h = model(init, x)
        got_type, got_heads = model.type_logits(h), model.field_logits(h, y_type)
    assert (got_type - want_type).abs().max() < 1e-4
    for got, want in zip(got_heads, want_heads):
        assert got.shape == want.shape
        assert (got - want).abs().max() < 1e-4 * (1 + want.abs().max())
    # The recurrent form runs the loaded weights too.
    state = model.init_state(init)
    for t in range(5):
        ht, state = model.step(x[:, t], state)
    assert (model.type_logits(ht) - want_type[:, 4]).abs().max() < 1e-4


def test_reference_loader_rejects_a_broken_state_dict():
    sd = {k: torch.zeros(s) for k, s in reference_keys()}
    del sd["proj_pitch.bias"]
    with pytest.raises(VbgmError, match="proj_pitch.bias"):
        load_reference_state_dict(sd)
    sd["proj_pitch.bias"] = torch.zeros(129)
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(VbgmError, match="unexpected"):
        load_reference_state_dict(sd)


# ---- loss ----
def test_loss_ignores_padding_and_ablated_fields():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    init, x, y = random_init(g, 2), random_rows(g, 2, 20), random_rows(g, 2, 20)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 12:] = False
    model = CMT(TINY).eval()
    loss, fields = model.loss(init, x, y, mask)
    assert set(fields) == set(vocab.FIELD_NAMES[:7])
    assert loss.item() == pytest.approx(sum(v.item() for v in fields.values()) / 7)
    y2 = y.clone()
    y2[1, 12:] = 0  # change targets only where masked
    assert model.loss(init, x, y2, mask)[0].item() == pytest.approx(loss.item(), abs=1e-6)
    y2[1, 3, vocab.PITCH] = (y[1, 3, vocab.PITCH] + 1) % 129
    assert model.loss(init, x, y2, mask)[0].item() != pytest.approx(loss.item(), abs=1e-6)

    base = CMT(CMTConfig(**{**TINY.__dict__, "ablate_controls": True})).eval()
    loss, fields = base.loss(init, x, y, mask)
    assert set(fields) == {"barbeat", "type", "pitch", "duration", "instrument"}
    x2 = x.clone()
    x2[..., [vocab.DENSITY, vocab.STRENGTH, vocab.P_BEAT]] = 1  # controls are not seen
    with torch.no_grad():
        assert torch.equal(base(init, x), base(init, x2))
    heads = base.field_logits(base(init, x), y[..., vocab.TYPE])
    assert heads[1] is None and heads[5] is None and heads[2].shape[-1] == 129


# ---- our checkpoints ----
def test_checkpoint_round_trip_full_and_half(tmp_path):
    torch.manual_seed(0)
    model = CMT(CONFIGS["small"]).eval()
    save_checkpoint(tmp_path / "full.pt", model, model.config, {"step": 3})
    save_checkpoint(tmp_path / "half.pt", model, model.config, half=True)
    loaded, meta = load_checkpoint(tmp_path / "full.pt")
    assert meta["extra"] == {"step": 3} and meta["config"] == model.config
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    half, _ = load_checkpoint(tmp_path / "half.pt")
    assert half.in_proj.weight.dtype == torch.float32
    assert (half.in_proj.weight - model.in_proj.weight).abs().max() < 1e-3
    size = (tmp_path / "half.pt").stat().st_size
    assert size < 0.55 * (tmp_path / "full.pt").stat().st_size and size < 25e6


def test_load_checkpoint_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VbgmError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(VbgmError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(VbgmError, match="not a vbgm model"):
        load_checkpoint(tmp_path / "other.pt")


# ---- learning ----
def test_overfits_one_real_song(real_song_rows):
    """A tiny model memorises the first 192 tokens of a real song in a few hundred steps."""
    torch.manual_seed(0)
    rows = torch.from_numpy(real_song_rows[:193].astype(np.int64))[None]
    x, y = rows[:, :-1], rows[:, 1:]
    init = torch.from_numpy(tokens.ANY_INIT.astype(np.int64))[None]
    mask = torch.ones(y.shape[:2], dtype=torch.bool)
    model = CMT(CMTConfig(n_layer=2, d_model=96, n_head=4, d_ff=192, dropout=0.0, chunk=32))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    first = None
    for _ in range(200):
        loss, _ = model.loss(init, x, y, mask)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        final, fields = model.loss(init, x, y, mask)
    assert first > 1.5
    assert final.item() < 0.2, {k: round(v.item(), 3) for k, v in fields.items()}


@torch.no_grad()
def test_int8_step_keeps_the_distributions_of_float32(midi_root) -> None:
    """The int8 recurrent step (`CMT.step(int8=True)`) on a real song with the shipped model:
    every field's distribution within a mean KL of 0.01 of float32's (measured 1e-4)."""
    from vbgm.model import int8_available, int8_divergences
    from vbgm.pipeline import load_model

    if not int8_available():
        pytest.skip("this torch build has no quantised CPU engine")
    model = load_model()
    song, _ = load_song(sorted((midi_root / "simutrans").glob("*.mid"))[0])
    rows = torch.from_numpy(tokens.encode(song)[:200].astype(np.int64))
    init = torch.from_numpy(tokens.init_tokens(0, song.instruments))[None]
    kls = int8_divergences(model, init, rows)
    assert np.mean(kls) <= 0.01, np.mean(kls)
    assert np.max(kls) < 0.2
