#!/usr/bin/env bash
# One prepared run of every speed benchmark on a GPU (DESIGN.md §8); each result is one
# JSON line under $OUT (or ./bench-out). Order: most important first, each step time-boxed.
set -u
OUT=${OUT:-bench-out}; mkdir -p "$OUT"
PY=${PY:-python3}
B=benchmarks
log() { echo "== $*" | tee -a "$OUT/log.txt"; }
run() { local t=$1 f=$2; shift 2; log "$*"; timeout "$t" $PY "$@" >> "$OUT/$f" 2>> "$OUT/log.txt"; echo "rc=$?" >> "$OUT/log.txt"; }
nvidia-smi -L >> "$OUT/log.txt" 2>&1
run 40 train.jsonl $B/train_step.py --device cuda --reference --capture cuda-graph --steps 50 --repeats 3
run 25 train.jsonl $B/train_step.py --device cuda --capture cuda-graph --precision bf16 --steps 50 --repeats 3
run 45 search.txt $B/search_step.py --device cuda --reference --steps 5 --warmup 2
run 25 search.txt $B/search_step.py --device cuda --bf16 --steps 5 --warmup 2
run 20 search.txt $B/search_step.py --device cuda --partial-channels 4 --steps 5 --warmup 2
run 25 prune.jsonl $B/prune_step.py --device cuda --steps 10 --repeats 3
run 25 train.jsonl $B/train_step.py --device cuda --capture none --steps 30 --repeats 3
run 70 train.jsonl $B/train_step.py --device cuda --capture compile+cuda-graph --precision bf16 --steps 50 --repeats 3
log done
