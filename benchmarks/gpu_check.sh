#!/usr/bin/env bash
# GPU check of both trainings: CUDA + bf16 autocast, interrupted and resumed, with throughput.
#
#   bash benchmarks/gpu_check.sh            # on a machine with a CUDA GPU, from the repo root
#
# vbgm: `vbgm train` (bf16 autocast on CUDA is built in) for VBGM_STEPS steps, stopped halfway
# (--stop-after) and resumed; prints tokens/s. ap10k: `ap10k train --device cuda --amp bf16` on
# procedural animals (`ap10k synth`) with a half-minute time budget, resumed for another;
# prints images/s. Each leg runs about half a minute (tune with the variables below).
#
# Data: vbgm needs a prepared dataset (VBGM_DATASET) or MIDI files to prepare (VBGM_MIDI;
# default: the first of $VBGM_DATA/midi, ../shared/data/midi, shared/data/midi).
# Environment: PYTHON (default .venv/bin/python or python3), NPROC (processes per node, one per
# GPU; default 1), WORK (scratch folder; default a new temporary one), VBGM_CONFIG (small),
# VBGM_STEPS (2000 per leg at most), VBGM_BATCH (16), AP10K_MODEL (hrnet_w32), AP10K_N (1500),
# AP10K_BATCH (64), AP10K_MINUTES (0.5 per leg). Exit status: 0 all good, 2 no CUDA or no data,
# 1 a training failed.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
NPROC=${NPROC:-1}
WORK=${WORK:-$(mktemp -d -t gpu_check.XXXXXX)}
VBGM_CONFIG=${VBGM_CONFIG:-small}
VBGM_STEPS=${VBGM_STEPS:-2000}
VBGM_BATCH=${VBGM_BATCH:-16}
AP10K_MODEL=${AP10K_MODEL:-hrnet_w32}
AP10K_N=${AP10K_N:-1500}
AP10K_BATCH=${AP10K_BATCH:-64}
AP10K_MINUTES=${AP10K_MINUTES:-0.5}

fail() { echo "gpu_check: $*" >&2; exit 2; }

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    fail "no CUDA GPU visible to torch ($PY); this check needs one"
fi
"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0);
print(f"gpu_check: torch {torch.__version__}, {torch.cuda.device_count()} x {p.name}, "
      f"{p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}")'
echo "gpu_check: scratch folder $WORK"
mkdir -p "$WORK"

launch() {  # launch MODULE ARGS...: one process, or torchrun with NPROC of them
    local module=$1
    shift
    if [ "$NPROC" -gt 1 ]; then
        "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m "$module" "$@"
    else
        "$PY" -m "$module" "$@"
    fi
}

mean_column() {  # mean_column LOG.csv COLUMN FIRST [END]: mean of COLUMN over rows FIRST..END-1
    "$PY" - "$@" <<'EOF'
import csv, sys
end = int(sys.argv[4]) if len(sys.argv) > 4 else None
rows = list(csv.DictReader(open(sys.argv[1], newline="")))[int(sys.argv[3]):end]
vals = [float(r[sys.argv[2]]) for r in rows if r.get(sys.argv[2]) not in ("", None)]
print(f"{sum(vals) / len(vals):.1f}" if vals else "n/a")
EOF
}

rows() { "$PY" -c 'import csv, sys; print(len(list(csv.DictReader(open(sys.argv[1])))))' "$1"; }

# ---------------------------------------------------------------- vbgm: tokens/s
DATASET=${VBGM_DATASET:-}
if [ -z "$DATASET" ]; then
    MIDI=${VBGM_MIDI:-}
    for c in "${VBGM_DATA:-/nonexistent}/midi" ../shared/data/midi shared/data/midi; do
        [ -z "$MIDI" ] && [ -d "$c" ] && MIDI=$c
    done
    [ -n "$MIDI" ] || fail "no vbgm data: set VBGM_DATASET (prepared) or VBGM_MIDI (MIDI folder)"
    DATASET=$WORK/vbgm_dataset
    echo "gpu_check: preparing $MIDI -> $DATASET"
    "$PY" -m vbgm.cli prepare "$MIDI" -o "$DATASET" --no-progress > "$WORK/prepare.log" 2>&1 \
        || { cat "$WORK/prepare.log" >&2; fail "vbgm prepare failed"; }
fi
RUN=$WORK/vbgm_run
HALF=$((VBGM_STEPS / 2))
VARGS=(train "$DATASET" -o "$RUN" --config "$VBGM_CONFIG" --steps "$VBGM_STEPS"
       --batch-size "$VBGM_BATCH" --eval-every 500 --ckpt-every 250 --no-progress)
t0=$(date +%s)
launch vbgm.cli "${VARGS[@]}" --stop-after "$HALF" || { echo "gpu_check: vbgm train failed" >&2; exit 1; }
t1=$(date +%s)
first=$(rows "$RUN/log.csv")
launch vbgm.cli "${VARGS[@]}" --resume || { echo "gpu_check: vbgm resume failed" >&2; exit 1; }
t2=$(date +%s)
"$PY" - "$RUN/last.pt" "$VBGM_STEPS" <<'EOF'
import sys
from vbgm.model import load_checkpoint
extra = load_checkpoint(sys.argv[1])[1]["extra"]
assert extra["step"] == int(sys.argv[2]), extra["step"]
assert extra["rng"] and all("cuda" in r for r in extra["rng"]), "no CUDA RNG state saved"
EOF
echo "vbgm  ($VBGM_CONFIG, bf16): tokens/s $(mean_column "$RUN/log.csv" tokens_per_s 0)" \
     "(first leg $(mean_column "$RUN/log.csv" tokens_per_s 0 "$first")," \
     "resumed $(mean_column "$RUN/log.csv" tokens_per_s "$first"));" \
     "legs $((t1 - t0)) s + $((t2 - t1)) s, resumed to step $VBGM_STEPS"

# ---------------------------------------------------------------- ap10k: images/s
SYN=$WORK/ap10k_synth
echo "gpu_check: rendering $AP10K_N synthetic animals -> $SYN"
"$PY" -m ap10k.cli synth -o "$SYN" --n "$AP10K_N" --size 256 256 > "$WORK/synth.log" 2>&1 \
    || { cat "$WORK/synth.log" >&2; fail "ap10k synth failed"; }
ARUN=$WORK/ap10k_run
AARGS=(train --model "$AP10K_MODEL" --train "$SYN/annotations/synth-train.json"
       --val "$SYN/annotations/synth-val.json" --images "$SYN/data" -o "$ARUN" --epochs 1000
       --val-every 1000 --batch-size "$AP10K_BATCH" --workers 8 --device cuda --amp bf16
       --no-progress)
t0=$(date +%s)
launch ap10k.cli "${AARGS[@]}" --max-minutes "$AP10K_MINUTES" > "$WORK/ap10k1.log" \
    || { echo "gpu_check: ap10k train failed" >&2; exit 1; }
t1=$(date +%s)
first=$(rows "$ARUN/log.csv")
launch ap10k.cli "${AARGS[@]}" --resume --max-minutes "$AP10K_MINUTES" > "$WORK/ap10k2.log" \
    || { echo "gpu_check: ap10k resume failed" >&2; exit 1; }
t2=$(date +%s)
total=$(rows "$ARUN/log.csv")
[ "$total" -gt "$first" ] || { echo "gpu_check: ap10k resume trained no epoch" >&2; exit 1; }
"$PY" - "$ARUN/last.pt" <<'EOF'
import sys, torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
assert all("cuda" in r for r in ckpt["rng"]), "no CUDA RNG state saved"
EOF
echo "ap10k ($AP10K_MODEL, bf16): images/s $(mean_column "$ARUN/log.csv" images_per_s 0)" \
     "(first leg $(mean_column "$ARUN/log.csv" images_per_s 0 "$first")," \
     "resumed $(mean_column "$ARUN/log.csv" images_per_s "$first")); epochs $first + $((total - first));" \
     "legs $((t1 - t0)) s + $((t2 - t1)) s"
echo "gpu_check: OK"
