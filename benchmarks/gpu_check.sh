#!/usr/bin/env bash
# The GPU check: the device tests on CUDA, then it/s and peak GPU memory of the cpu, gpu and paper
# presets on the synthetic room and the large scene; one JSON. Under 8 minutes; `--device cpu` runs
# the same check on the CPU (how it is exercised on machines without a GPU).
#   bash benchmarks/gpu_check.sh [--device cuda|cpu] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")"
exec python gpu_check.py "$@"
