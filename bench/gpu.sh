#!/usr/bin/env bash
# One-GPU throughput run at the paper's shapes with random weights (no downloads), under 8 minutes:
# adapter-training samples/s + MFU (padded and packed), peak memory, generate tok/s batched vs one by one,
# vLLM tok/s if installed.
#   bash bench/gpu.sh [extra bench/gpu.py flags]      e.g. --batch 32 --pack-length 4096
#   bash bench/gpu.sh --wheels DIR [flags]             first add the wheels in DIR (an offline node; see below)
#   bash bench/gpu.sh --demo                           the demo config's shapes: an epoch of 1-6 s clips in fixed
#                                                      batches of 4 vs a token budget, padded and packed
#   bash bench/gpu.sh --tiny --steps 1                 the CPU smoke run CI does (--tiny --demo: its epoch part)
# Writes bench/gpu_result.json (or $GPU_RESULT); paste the printed JSON into bench/RESULTS.md with the date and the card.
#
# The run needs torch, transformers, safetensors, numpy, PyYAML, omegaconf and tqdm, not the whole toolkit
# install: a GPU node's own PyTorch image usually has all but omegaconf.  Where the node cannot reach an
# index, download the missing wheels on a machine that can (the preflight prints the command) and pass
# their folder with --wheels: they are installed into a scratch folder put first on PYTHONPATH, so the
# node's torch and CUDA stack are left as they are.
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # nothing may be fetched: the shapes come from toolkit/presets
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY="${PYTHON:-.venv/bin/python}"
out="${GPU_RESULT:-bench/gpu_result.json}"

args=()
wheels=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) [ $# -ge 2 ] || { echo "bench/gpu.sh: --wheels needs a folder of .whl files" >&2; exit 2; }
              wheels=$2; shift 2 ;;
    --wheels=*) wheels=${1#--wheels=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

if [ -n "$wheels" ]; then
  case "$wheels" in /*) ;; *) wheels="$caller_dir/$wheels" ;; esac
  if ! compgen -G "$wheels/*.whl" >/dev/null; then
    echo "bench/gpu.sh: --wheels $wheels holds no .whl files" >&2; exit 2
  fi
  site=$(mktemp -d "${TMPDIR:-/tmp}/gpu-bench-site.XXXXXX")
  trap 'rm -rf "$site"' EXIT
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl
  export PYTHONPATH="$PWD:$site${PYTHONPATH#"$PWD"}"
fi

# Preflight: every module the run imports, named at once, with the commands that bring the missing ones.
"$PY" - <<'PY'
import importlib.util, platform, sys
needed = {"torch": "torch", "transformers": "transformers", "safetensors": "safetensors", "numpy": "numpy",
          "yaml": "PyYAML", "omegaconf": "omegaconf", "tqdm": "tqdm"}
missing = [dist for module, dist in needed.items() if importlib.util.find_spec(module) is None]
if missing:
    py = ".".join(platform.python_version_tuple()[:2])
    pins = {"omegaconf": "omegaconf==2.4.0"}
    names = " ".join(pins.get(d, d) for d in missing)
    sys.exit(
        f"bench/gpu.sh: {sys.executable} (Python {py}) lacks {', '.join(missing)}, which bench/gpu.py imports. "
        f"Install them (pip install {names}), or, on a node without an index, download the wheels where "
        f"PyPI is reachable: python3 -m pip download --no-deps --only-binary=:all: --python-version {py} "
        f"--implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d wheels {names}; "
        f"copy the folder over and run: bash bench/gpu.sh --wheels wheels"
    )
PY

case " ${args[*]:-} " in
  *" --tiny "*) ;;   # the CPU smoke run (CI): tiny shapes, wherever torch runs
  *)
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
      echo "bench/gpu.sh: no CUDA device visible to torch; for the CPU smoke run use: bash bench/gpu.sh --tiny" >&2
      exit 1
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true ;;
esac
timeout 480 "$PY" bench/gpu.py --json "$out" ${args[@]+"${args[@]}"}
