#!/usr/bin/env bash
# The default run's proofs and the latency tune on one GPU, one after another, each step's results copied to R as
# it ends (R/session.log says when each step ran, R/DONE marks the end):
#   1. the default `rtbench run` twice, cold then warm caches       -> R/default-calibration.md, R/default-runs.sqlite.xz
#   2. `rtbench tune --latency-budget-ms 1` (10 minutes)            -> R/latency-1ms.md, .html, -frontier.png, -stdout.txt
#   3. the default run twice with `--budget 40` (what a shorter run gives up) -> R/budget40-calibration.md, ...
# Usage (from the project root, with onnxruntime-gpu on PYTHONPATH when it is staged):
#     benchmarks/h200_session.sh R
set -u
R="${1:?usage: benchmarks/h200_session.sh RESULTS_DIR}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
W="$R/work"
mkdir -p "$W"
log() { echo "$(date -u +%H:%M:%S) $*" >> "$R/session.log"; }
calibrate() {  # NAME [RTBENCH RUN ARGS...]
  local name=$1; shift
  python3 benchmarks/calibration.py --out "$W/$name" --runs 2 ${1:+-- "$@"} > "$R/$name-stdout.txt" 2>&1
  local rc=$?
  cp "$W/$name/calibration.md" "$R/$name-calibration.md" 2>/dev/null
  xz -T4 -c "$W/$name/store/rtbench.sqlite" > "$R/$name-runs.sqlite.xz" 2>/dev/null
  return $rc
}
log "start; $(nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader 2>&1)"
log "default run x2"; calibrate default; log "default runs ended ($?)"
log "latency tune"
python3 benchmarks/tune_proof.py --out "$W/latency" --name latency-1ms -- \
  --model resnet18 --size 224 --latency-budget-ms 1 --budget-min 10 --device cuda
log "latency tune ended ($?)"
cp "$W/latency"/latency-1ms* "$R/" 2>/dev/null
xz -T4 -c "$W/latency/store/rtbench.sqlite" > "$R/latency-1ms.sqlite.xz" 2>/dev/null
log "default run x2 with --budget 40"; calibrate budget40 --budget 40; log "budget-40 runs ended ($?)"
touch "$R/DONE"
