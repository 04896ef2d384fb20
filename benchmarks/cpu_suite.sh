#!/usr/bin/env bash
# The CPU figures of docs/benchmarks.md, in one go (about 10 minutes on 2 idle cores).
# Every ratio comes from one script run with its implementations interleaved; run on an idle
# machine (the scripts print the load average they started under).
#   bash benchmarks/cpu_suite.sh [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/cpu}
mkdir -p "$OUT"
PY=${PY:-.venv/bin/python}
B=benchmarks
run() { local f=$1; shift; echo "== $*" | tee -a "$OUT/$f"; "$PY" "$@" 2>&1 | tee -a "$OUT/$f"; }
run train.txt $B/train_step.py --device cpu --reference --variant nasgal --variant nasgal-torch-kernels --variant nasgal-release-memory \
    --variant nasgal-nchw --variant nasgal-1-thread --rounds 10 --steps 2
run eval.txt $B/eval_step.py --device cpu --rounds 10 --steps 2
run search.txt $B/search_step.py --device cpu --reference --batch 16 --rounds 10 --steps 1
run train_options.txt $B/train_step.py --device cpu --variant nasgal --variant nasgal-bf16 --variant nasgal-no-mkldnn \
    --rounds 3 --steps 1
run e2e.txt $B/train_e2e.py --rounds 3
run depthwise.txt $B/depthwise.py
run depthwise.txt $B/depthwise.py --batch 128 --size 28 --in-channels 16 --channels-last --multiplier 1
run pool.txt $B/pool.py
