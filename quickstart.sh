#!/usr/bin/env bash
# One command, end to end on a built-in (generated, synthetic) sample set:
# install into .venv, then train → export --int8 → evaluate → stream. Output in ./demo
set -euo pipefail
cd "$(dirname "$0")"
bash .ci/install
exec .venv/bin/tocoad-demo --out "${1:-demo}"
