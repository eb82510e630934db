#!/bin/bash
# One model candidate on one data set: train, export FP32, evaluate (exact search), one row of the recall table.
#   benchmarks/recall_candidates.sh DATA_DIR OUT_ROOT NAME STAGES [CONFIG.yaml]
# Writes OUT_ROOT/<set>/<NAME>/{run,bundle,eval.json,train.out,export.out,eval.out,time.txt}; then
#   python benchmarks/recall_candidates_table.py OUT_ROOT      # markdown table of every candidate measured
# Heavy: run one at a time (nice -n 10 on a shared machine). time.txt holds wall and CPU seconds of tocoad-train.
set -eu
DATA=$1; ROOT=$2; NAME=$3; STAGES=$4; CONFIG=${5:-}
BIN=${TOCOAD_BIN:-$(dirname "$0")/../.venv/bin}
O=$ROOT/$(basename "$DATA")/$NAME
rm -rf "$O"; mkdir -p "$O"
[ -n "$CONFIG" ] && cp "$CONFIG" "$O/candidate.yaml"
/usr/bin/time -o "$O/time.txt" -f "user %U sys %S wall %e" \
  "$BIN/tocoad-train" --data "$DATA" --out "$O/run" --stages "$STAGES" --seed 0 ${CONFIG:+--config "$CONFIG"} \
    --quiet > "$O/train.out" 2>&1
"$BIN/tocoad-export" bundle "$O/run" --out "$O/bundle" --force > "$O/export.out" 2>&1
"$BIN/tocoad-eval" "$O/bundle" --data "$DATA" --json "$O/eval.json" --search exact --quiet > "$O/eval.out" 2>&1
echo "$(basename "$DATA") $NAME: $(head -n 3 "$O/eval.out" | tail -n 2 | tr '\n' ' ') train: $(cat "$O/time.txt")"
