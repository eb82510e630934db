#!/bin/bash
# ToCoAD ablation: baseline / no-guide / full on one data set, same seed, backbone and coreset ratio.
#   benchmarks/tocoad_ablation.sh DATA_DIR OUT_DIR [CONFIG.yaml] [STAGES...]
# Writes OUT_DIR/<stages>/{run,bundle,metrics.json,cputime.txt}. Train time: wall and CPU seconds of tocoad-train
# (CPU seconds ≈ wall on an otherwise idle machine with --threads 1).
set -eu
DATA=$1; OUT=$2; CONFIG=${3:-}; shift $(( $# < 3 ? $# : 3 ))
STAGES=${*:-baseline no-guide full}
for ST in $STAGES; do
  O=$OUT/$ST; rm -rf "$O"; mkdir -p "$O"
  /usr/bin/time -o "$O/cputime.txt" -f "user %U sys %S wall %e" \
    tocoad-train --data "$DATA" --out "$O/run" --stages "$ST" --seed 0 --coreset-ratio 0.1 --threads "${THREADS:-1}" \
      ${CONFIG:+--config "$CONFIG"} --quiet > "$O/train.out" 2>&1
  tocoad-export bundle "$O/run" --out "$O/bundle" --force > "$O/export.out" 2>&1
  tocoad-eval "$O/bundle" --data "$DATA" --json "$O/metrics.json" --search exact --quiet > "$O/eval.out" 2>&1
  echo "$ST: $(tail -n 1 "$O/eval.out")  train: $(cat "$O/cputime.txt")"
done
