#!/usr/bin/env bash
# The one command a GPU session runs (see bench/README.md): every figure bench/RESULTS.md asks
# for, in under 8 minutes on one H100, printed as it is measured.
#
#   bash bench/gpu_session.sh                 # results under $OUT (default /tmp/mer-bench)
#   BENCH_STAGES="stack packed" bash bench/gpu_session.sh    # only some stages (a rerun)
#   BENCH_ARGS="--tiny --device cpu --steps 2 --repeats 1 --pool 64" BENCH_TOTAL_S=200 \
#       bash bench/gpu_session.sh             # dry run of the script itself on a CPU machine
#
# Stages, each under `timeout` and given what is left of the total (BENCH_TOTAL_S, default 450 s):
#   main     single-model levers: bf16, channels_last, resident data, cudnn.benchmark, t2d, batch
#   stack    CUDA graphs, several models stacked in one process (vmap)
#   e2e      one real fold through mer.train.run_fold (+ one Ray Tune trial if ray imports)
#   packed   several processes on the GPU (Ray fractional GPUs, else torch.multiprocessing)
#   compile  torch.compile default / reduce-overhead (last: compiling is slow)
# Then OUT/results.md + results.json (all parts merged, with a summary) and OUT/parts.tgz (each
# part's own json/md/log). Nothing here changes GPU settings; it only reads nvidia-smi.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/mer-bench}
PARTS="$OUT/parts"
mkdir -p "$PARTS"
export PYTHONUNBUFFERED=1
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
PY=${PYTHON:-python3}
TOTAL=${BENCH_TOTAL_S:-450}
STAGES=" ${BENCH_STAGES:-main stack e2e packed compile} "  # e.g. BENCH_STAGES="stack packed"
T0=$SECONDS

log() { echo "[gpu_session +$((SECONDS - T0))s] $*"; }
left() { echo $((TOTAL - (SECONDS - T0))); }

# stage NAME MAX_S RESERVE_S ARGS... : run the harness with at most MAX_S seconds, leaving
# RESERVE_S for the stages after it; the harness stops starting rows 20 s before its limit.
stage() {
    local name=$1 max=$2 reserve=$3
    shift 3
    [[ $STAGES == *" $name "* ]] || return 0
    local budget=$(($(left) - reserve))
    ((budget > max)) && budget=$max
    if ((budget < 30)); then
        log "$name: skipped (${budget}s left for it)"
        return
    fi
    log "$name: up to ${budget}s"
    # shellcheck disable=SC2086 # BENCH_ARGS: extra harness arguments, e.g. "--tiny" for a dry run
    timeout -k 5 "$budget" "$PY" -m bench.throughput "$@" ${BENCH_ARGS:-} --out "$PARTS" \
        --tag "$name" --time-budget $((budget - 20)) 2>&1 | tee "$PARTS/$name.log"
    log "$name: exit ${PIPESTATUS[0]} (124 = cut by its timeout; the rows it printed stand)"
    tar -czf "$OUT/parts.tgz" -C "$OUT" parts # after every stage: a later cut keeps this one
}

log "environment"
{
    nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
    "$PY" - <<'PY'
import importlib.util, os, platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| cudnn", torch.backends.cudnn.version(), "| cpus", os.cpu_count())
print("cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for mod in ("ray", "optuna", "pandas", "yaml", "tqdm", "sklearn"):
    print(f"  {mod}: {'yes' if importlib.util.find_spec(mod) else 'NO'}")
PY
} 2>&1 | tee "$PARTS/env.log"

RAY_E2E=()
"$PY" -c "import ray" 2>/dev/null && RAY_E2E=(--e2e-ray)

stage main 190 230 --settings @main --steps 30 --repeats 3
stage stack 110 120 --settings @stack --steps 30 --repeats 3
stage e2e 70 60 --e2e "${RAY_E2E[@]}" --e2e-epochs 5
stage packed 100 15 --settings @packed --steps 30 --repeats 2
stage compile 150 5 --settings @compile --steps 30 --repeats 2

log "merge"
parts=()
for name in main stack e2e packed compile; do
    [ -f "$PARTS/$name.json" ] && parts+=("$PARTS/$name.json")
done
if ((${#parts[@]})); then
    "$PY" -m bench.throughput --merge "${parts[@]}" --out "$OUT" --tag results >/dev/null
fi
tar -czf "$OUT/parts.tgz" -C "$OUT" parts && rm -rf "$PARTS" # ≤ 8 files come back from $OUT
log "done: $OUT/results.md, $OUT/results.json, $OUT/parts.tgz"
[ -f "$OUT/results.md" ] && cat "$OUT/results.md"
