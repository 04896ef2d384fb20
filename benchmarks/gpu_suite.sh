#!/usr/bin/env bash
# One prepared run of the GPU checks and speed benchmarks (reference figures in docs/design.md), most important first,
# each step time-boxed; results and a log under $OUT (or ./bench-out). About 8 minutes.
#
# The device machine has torch (CUDA) but not pydantic or pytest. Before the run, on this side:
#   pip download pydantic pytest --python-version 3.12 --only-binary=:all: \
#       --platform manylinux2014_x86_64 -d .search-whl     # a git-ignored folder; name it in `carry`
# and start the command with:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .search-whl/*.whl; export PYTHONPATH=/tmp/site:$PWD
set -u
OUT=${OUT:-bench-out}; mkdir -p "$OUT"
PY=${PY:-python3}
B=benchmarks
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { local t=$1 f=$2; shift 2; log "$*"; timeout "$t" $PY "$@" >> "$OUT/$f" 2>> "$OUT/log.txt"; echo "rc=$?" >> "$OUT/log.txt"; }
nvidia-smi -L >> "$OUT/log.txt" 2>&1
# 1. A captured step computes what the eager step computes (search and training).
run 120 gpu_tests.txt -m pytest -q -p no:cacheprovider tests/test_gpu.py
# 2. The search step (issue 5's target: >= 4x the reference's 759 ms at <= half its 7.6 GiB).
S="$B/search_step.py --device cuda --steps 10 --warmup 3"
run 90 search.txt $S --reference --capture cuda-graph
run 40 search.txt $S --capture cuda-graph --bf16
run 60 search.txt $S --capture none --profile 2   # device busy time per step: what a graph cannot remove
run 40 search.txt $S --capture cuda-graph --recompute
run 40 search.txt $S --capture cuda-graph --partial-channels 4
run 60 search.txt $S --capture cuda-graph --order second --steps 5
# 3. Training and GAL steps (measured before; rerun for ratios on the same card).
run 60 train.jsonl $B/train_step.py --device cuda --json --reference --variant nasgal --variant nasgal-cuda-graph --steps 20 --rounds 10
run 40 train.jsonl $B/train_step.py --device cuda --json --reference --capture cuda-graph --precision bf16 --steps 20 --rounds 10
run 25 prune.jsonl $B/prune_step.py --device cuda --steps 10 --repeats 3
log done
