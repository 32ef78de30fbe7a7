#!/usr/bin/env bash
# One-GPU throughput run at the paper's shapes with random weights (no downloads), under 8 minutes:
# adapter-training samples/s + MFU, peak memory, generate tok/s batched vs one by one, vLLM tok/s if installed.
#   bash bench/gpu.sh [extra bench/gpu.py flags]      e.g. --batch 32 --pack-length 4096
#   bash bench/gpu.sh --tiny --steps 1                 the CPU smoke run CI does
# Writes bench/gpu_result.json (or $GPU_RESULT); paste the printed JSON into bench/RESULTS.md with the date and the card.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # nothing may be fetched: the shapes come from toolkit/presets
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && PY="${PYTHON:-.venv/bin/python}"
out="${GPU_RESULT:-bench/gpu_result.json}"
case " $* " in
  *" --tiny "*) ;;   # the CPU smoke run (CI): tiny shapes, wherever torch runs
  *)
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
      echo "bench/gpu.sh: no CUDA device visible to torch; for the CPU smoke run use: bash bench/gpu.sh --tiny" >&2
      exit 1
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true ;;
esac
timeout 480 "$PY" bench/gpu.py --json "$out" "$@"
