"""int8 vs float32 recurrent step: batch-1 tokens/s on one thread, `paper` and shipped model.

Both configs are measured in the same run, float32 and int8 alternating round by round (this
machine's absolute speed varies 2x from day to day; the ratio is what counts). A token is one
`CMT.step` plus the output heads (type, then the six fields given it), as in generation, without
the sampler's rules. The `paper` model has random weights (speed does not depend on their
values); the shipped model also gets the mean KL of its field distributions, int8 vs float32,
over the first 200 tokens of a real song (teacher-forced), which must stay ≤ 0.01.

Writes benchmarks/results/int8.json (run_all.py's convention).

    python benchmarks/bench_int8.py [--tokens 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from vbgm.atomic import write_text_atomic
from vbgm.midi import load_song
from vbgm.model import CMT, CONFIGS, int8_available, int8_divergences
from vbgm.pipeline import load_model

from vbgm import tokens, vocab

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "int8.json"
DATA = Path(os.environ.get("VBGM_DATA", ROOT.parent / "shared" / "data"))


def real_rows(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(init rows, first n token rows) of a real multi-track song."""
    song, _ = load_song(sorted((DATA / "midi" / "simutrans").glob("*.mid"))[0])
    rows = torch.from_numpy(tokens.encode(song)[:n].astype(np.int64))
    init = torch.from_numpy(tokens.init_tokens(0, song.instruments))[None]
    return init, rows


@torch.no_grad()
def tokens_per_s(model: CMT, init: torch.Tensor, rows: torch.Tensor, int8: bool) -> float:
    """Tokens/s of step + heads over `rows`, batch 1."""
    state = model.init_state(init)
    model.step(rows[:1], state, int8=int8)  # builds the step cache outside the timing
    state = model.init_state(init)
    start = time.perf_counter()
    for r in rows:
        h, state = model.step(r[None], state, int8=int8)
        types = r[None, vocab.TYPE]
        model.type_logits(h)
        model.field_logits(h, types)
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not int8_available():
        raise SystemExit("this torch build has no quantised CPU engine: nothing to compare")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    init, rows = real_rows(args.tokens)
    models = {"paper": CMT(CONFIGS["paper"]).eval(), "shipped": load_model()}
    figures, out = [], {}
    for name, model in models.items():
        best = {False: 0.0, True: 0.0}
        for _ in range(args.rounds):
            for int8 in (False, True):
                best[int8] = max(best[int8], tokens_per_s(model, init, rows, int8))
        ratio = best[True] / best[False]
        out[name] = {"float32": round(best[False], 1), "int8": round(best[True], 1),
                     "speedup": round(ratio, 2)}
        line = (f"{name} ({model.config.n_layer}x{model.config.d_model}): float32 "
                f"{best[False]:.0f}, int8 {best[True]:.0f} tokens/s = {ratio:.2f}x")
        if name == "shipped":
            out[name]["mean_kl"] = float(np.mean(int8_divergences(model, init, rows[:200])))
            line += f"; mean KL of the field distributions {out[name]['mean_kl']:.1e}"
        print(line, flush=True)
        figures.append({"metric": f"int8 step speed-up, {name}, batch 1, 1 thread",
                        "value": round(ratio, 2), "unit": "x",
                        "note": f"{best[True]:.0f} vs {best[False]:.0f} tokens/s (step + heads), "
                                f"best of {args.rounds} alternating rounds; "
                                f"{platform.machine()}, load {os.getloadavg()[0]:.1f}"})
    write_text_atomic(RESULTS, json.dumps({"name": "int8", "figures": figures, "runs": out},
                                          indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
