#!/usr/bin/env bash
# The default run's wall time and intervals at 40 s and 70 s on one GPU, in one store folder so that only the first
# run compiles (each step's results copied to R as it ends; R/session.log says when each step ran):
#   1. `rtbench run --budget 40` twice: cold, then warm caches   -> R/b40-calibration.md
#   2. `rtbench run --budget 40 --rounds 10` twice (warm)         -> R/b40r10-calibration.md
#   3. the default `rtbench run` (70 s) twice (warm)              -> R/b70-calibration.md
#   then the store of all six runs (R/setup-runs.sqlite.xz) and its set-up timeline (R/setup-timeline.md).
# Usage (from the project root, with onnxruntime-gpu on PYTHONPATH when it is staged):
#     benchmarks/h200_setup_runs.sh R
set -u
R="${1:?usage: benchmarks/h200_setup_runs.sh RESULTS_DIR}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
W="${WORK:-/tmp/rtbench-setup-runs}"  # the store and its caches (large): only the pages and the store come back
mkdir -p "$R" "$W"
log() { echo "$(date -u +%H:%M:%S) $*" >> "$R/session.log"; }
calibrate() {  # NAME [RTBENCH RUN ARGS...]
  local name=$1; shift
  python3 benchmarks/calibration.py --out "$W" --runs 2 ${1:+-- "$@"} > /dev/null 2>&1
  local rc=$?
  mv "$W/calibration.md" "$R/$name-calibration.md" 2>/dev/null
  return $rc
}
log "start; $(nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader 2>&1)"
log "budget 40 x2"; calibrate b40 --budget 40; log "ended ($?)"
log "budget 40, 10 rounds x2"; calibrate b40r10 --budget 40 --rounds 10; log "ended ($?)"
log "default (70 s) x2"; calibrate b70; log "ended ($?)"
python3 benchmarks/setup_timeline.py "$W/store" --out "$R/setup-timeline.md" > /dev/null
xz -T4 -c "$W/store/rtbench.sqlite" > "$R/setup-runs.sqlite.xz"
log "done"
