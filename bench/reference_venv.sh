#!/usr/bin/env bash
# A venv in which the reference implementation (kehanlu/DeSTA2.5-Audio) imports and trains on CPU, for
# `python bench/reference.py --reference-dir DIR` (which then finds DIR/.venv/bin/python by itself).
#   git clone https://github.com/kehanlu/DeSTA2.5-Audio DIR && git -C DIR checkout 5503dfc
#   bash bench/reference_venv.sh DIR [LULUTILS]     LULUTILS: a path or pip URL of kehanlu/lulutils
#                                                    (default: git+https://github.com/kehanlu/lulutils.git)
# Pins: the reference runs on transformers 4.49-4.57 only (on 5.x its Whisper taps silently go wrong), and
# its `datasets` stack needs numpy < 2. silero-vad comes from PyPI because the reference's torch.hub load
# needs the network. Nothing here is installed into the toolkit's own venv.
set -euo pipefail
dir=${1:?usage: bash bench/reference_venv.sh REFERENCE_DIR [LULUTILS]}
lulutils=${2:-git+https://github.com/kehanlu/lulutils.git}
if [ ! -f "$dir/desta/models/modeling_desta25.py" ]; then
  echo "reference_venv.sh: $dir has no desta/models/modeling_desta25.py; pass a checkout of kehanlu/DeSTA2.5-Audio" >&2
  exit 1
fi
python3 -m venv "$dir/.venv"
pip="$dir/.venv/bin/python -m pip"
$pip install -q "${DESTA_TORCH:-torch==2.13.0}"
$pip install -q "transformers==4.57.6" "numpy<2" "pyarrow<26" "pandas<3" "huggingface_hub==0.34.3" \
  datasets omegaconf safetensors soundfile librosa whisper_normalizer
$pip install -q --no-deps "silero-vad==6.2.3" "$lulutils"
"$dir/.venv/bin/python" -c "import sys; sys.path.insert(0, '$dir'); import desta, lulutils, silero_vad; print('reference venv ready:', '$dir/.venv')"
