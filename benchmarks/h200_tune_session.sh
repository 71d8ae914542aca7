#!/usr/bin/env bash
# The #14 proofs on one GPU, one after another, each in a fresh store (cold caches):
#   1. `rtbench tune --objective throughput` (10 minutes)     -> R/throughput.md, .html, -frontier.png, -stdout.txt
#   2. the default `rtbench run` twice, cold then warm caches -> R/default/calibration.md (wall times, intervals)
#   3. `rtbench tune --latency-budget-ms 1` (10 minutes)      -> R/latency-1ms.md, ...
# Usage (from the project root, with onnxruntime-gpu on PYTHONPATH when it is staged):
#     benchmarks/h200_tune_session.sh R
# Each step's stores stay under R/stores; R/DONE marks the end, R/session.log says when each step ran.
set -u
R="${1:?usage: benchmarks/h200_tune_session.sh RESULTS_DIR}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
mkdir -p "$R/stores"
log() { echo "$(date -u +%H:%M:%S) $*" >> "$R/session.log"; }
log "start; $(nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader 2>&1)"
log "throughput tune"
python3 benchmarks/tune_proof.py --out "$R/stores/throughput" --name throughput -- \
  --model resnet18 --size 224 --objective throughput --budget-min 10 --device cuda
log "throughput tune ended ($?)"
log "default run x2"
python3 benchmarks/calibration.py --out "$R/default" --runs 2
log "default runs ended ($?)"
log "latency tune"
python3 benchmarks/tune_proof.py --out "$R/stores/latency" --name latency-1ms -- \
  --model resnet18 --size 224 --latency-budget-ms 1 --budget-min 10 --device cuda
log "latency tune ended ($?)"
touch "$R/DONE"
