#!/usr/bin/env bash
# Train the music model on one GPU within a time budget and bring the weights back.
#
#   bash benchmarks/gpu_train.sh PACKED_DATASET OUT_DIR     # from the repo root
#
# PACKED_DATASET: a folder written by `python benchmarks/pack_dataset.py pack` (it travels;
# the 160 MB token file does not need to). Runs the runs of PLAN side by side on the one GPU
# (bf16 autocast), each fitted to MINUTES by `vbgm train --minutes`:
#   PLAN=scratch (the default)
#     medium-augment    medium model, keys by random transposition of each window (from scratch)
#     medium-normalise  medium model, every song in C major / A minor (from scratch)
#     small-augment     the shipped small model continued with keys (augment)
#   PLAN=continue: the shipped model trained further, one run per window length with the same
#   tokens per step: win512 (as it was trained) and win2048 (a model trained on 512-token
#   windows loses its way in longer songs, past ~15 bars; a third run, win4096, was worse at
#   512 tokens, 0.295 vs 0.280, and three models outgrow what a device call brings back). The
#   weights are packed first; then, time allowing, the shipped model and the runs' on the
#   validation songs at 512 and 4096 tokens (OUT_DIR/val_512.md, val_4096.md).
# and, with GPU_CHECK=1, `benchmarks/gpu_check.sh` alongside (short legs; its throughput is then
# that of a shared GPU). OUT_DIR receives runs.tar.part-* (each run's model.pt, log.csv,
# curves.png, train.log; rejoin with `cat runs.tar.part-* | tar x`) and gpu_check.log.
# Environment: PYTHON (python3), MINUTES (7), BATCH (64), REQUIRE_GPU (1; 0 = a CPU dry run).
set -uo pipefail

cd "$(dirname "$0")/.."
PACKED=${1:?packed dataset folder}
OUT=${2:?output folder}
PY=${PYTHON:-python3}
MINUTES=${MINUTES:-7}
BATCH=${BATCH:-64}
WORK=$(mktemp -d -t gpu_train.XXXXXX)
export PYTHONPATH=$PWD/vbgm/src:$PWD/ap10k/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
mkdir -p "$OUT"

"$PY" -c 'import torch; p = torch.cuda.get_device_properties(0);
print(f"gpu_train: torch {torch.__version__}, {p.name}, {p.total_memory / 2**30:.0f} GiB")' \
    || [ "${REQUIRE_GPU:-1}" = 0 ] || { echo "gpu_train: no CUDA GPU" >&2; exit 2; }
"$PY" benchmarks/pack_dataset.py unpack "$PACKED" "$WORK/ds" || exit 2

if [ "${GPU_CHECK:-0}" = 1 ]; then
    VBGM_DATASET=$WORK/ds VBGM_STEPS=${CHECK_STEPS:-300} VBGM_BATCH=16 AP10K_N=300 \
        AP10K_MINUTES=0.25 AP10K_BATCH=32 PYTHON=$PY WORK=$WORK/check \
        bash benchmarks/gpu_check.sh > "$OUT/gpu_check.log" 2>&1 &
    CHECK=$!
fi

COMMON=(--batch-size "$BATCH" --steps 100000 --minutes "$MINUTES" --eval-every 200
        --ckpt-every 1000 --warmup 300 --no-progress)
SHIPPED=vbgm/src/vbgm/assets/default.pt
declare -A ARGS
case "${PLAN:-scratch}" in
    scratch) ARGS=(
        [medium-augment]="--config medium --keys augment --lr 1e-3"
        [medium-normalise]="--config medium --keys normalise --lr 1e-3"
        [small-augment]="--config small --keys augment --lr 5e-4 --init-from $SHIPPED") ;;
    continue)
        CONT="--config medium --keys augment --lr 3e-4 --warmup 100 --init-from $SHIPPED"
        ARGS=([win512]="$CONT --seq-len 512 --batch-size $BATCH"
              [win2048]="$CONT --seq-len 2048 --batch-size $((BATCH / 4))") ;;
    *) echo "gpu_train: unknown PLAN ${PLAN}" >&2; exit 2 ;;
esac
PIDS=()
for run in "${!ARGS[@]}"; do
    mkdir -p "$WORK/runs/$run"
    # shellcheck disable=SC2086
    "$PY" -m vbgm.cli train "$WORK/ds" -o "$WORK/runs/$run" "${COMMON[@]}" ${ARGS[$run]} \
        > "$WORK/runs/$run/train.log" 2>&1 &
    PIDS+=($!)
done
for pid in "${PIDS[@]}"; do wait "$pid"; done
[ -n "${CHECK:-}" ] && wait "$CHECK"

for run in "${!ARGS[@]}"; do  # a run stopped early still has best.pt: export it in float16
    dir=$WORK/runs/$run
    echo "== $run: $(tail -n 1 "$dir/train.log")"
    if [ ! -f "$dir/model.pt" ] && [ -f "$dir/best.pt" ]; then
        "$PY" - "$dir" <<'EOF'
import sys
from vbgm.model import load_checkpoint, save_checkpoint
m, meta = load_checkpoint(f"{sys.argv[1]}/best.pt")
save_checkpoint(f"{sys.argv[1]}/model.pt", m, meta["config"], meta["extra"], half=True)
EOF
    fi
    rm -f "$dir/last.pt" "$dir/best.pt"
done
tar -C "$WORK" -cf - runs | split -b 15M - "$OUT/runs.tar.part-"  # the weights first
if [ "${PLAN:-scratch}" = continue ]; then  # then, time allowing, the validation songs
    for len in 512 4096; do
        "$PY" -m vbgm.cli evaluate loss "$WORK/ds" "$SHIPPED" "$WORK"/runs/*/model.pt \
            --seq-len "$len" --md "$OUT/val_$len.md" >> "$OUT/eval.log" 2>&1
    done
fi
ls -la "$OUT"
