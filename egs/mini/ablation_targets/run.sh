#!/usr/bin/env bash
# Self-generated vs label-template targets on the embedded mini corpus (egs/mini/ablation_targets).
#   ./run.sh [key=value ...]        # e.g. ./run.sh train.max_steps=100 (applied to every variant)
# It takes no --stage: finished steps are skipped on a rerun; redo the shared data with ../desta25/run.sh --stage N.
# 1. data and self-generated targets: ../desta25 stages 1-4 (skipped where already done)
# 2. label-template targets for the same clips and prompts (conf/label_targets.yaml)
# 3. the frozen encoder's feature cache, shared by both variants
# 4. train, decode and score each variant (toolkit.bin.ablate; finished stages are skipped on a rerun), then
#    exp/ablation_targets/controls.md + controls.png: per task, each variant beside the backbone reading the
#    seed description (closed-set accuracy and instruction following), and comparison.md for every metric.
# A third variant, targets written by another model, is one more conf like label_targets.yaml with
# `backend: {name: openai, ...}` (or another local LLM) and one more --variant line; these machines have no
# second LLM, so it is not run here.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
cd "$(dirname "$0")"
repo=../../..
if [ -z "${PYTHON:-}" ] && [ -x "$repo/.venv/bin/python" ]; then python=$repo/.venv/bin/python; else python=${PYTHON:-python}; fi
../desta25/run.sh --stop_stage 4
"$python" -m toolkit.bin.selfgen --config conf/label_targets.yaml
"$python" -m toolkit.bin.cache_features --config conf/ablation.yaml "$@"
# (the overrides go before the --variant lists, which would otherwise take them as the last variant's own)
"$python" -m toolkit.bin.ablate --config conf/ablation.yaml --name targets "$@" \
  --variant self_generated train.data.train_jsonl=../desta25/dump/selfgen/desta25/train.jsonl \
                           train.data.dev_jsonl=../desta25/dump/selfgen/desta25/dev.jsonl \
  --variant label_template train.data.train_jsonl=dump/label_template/train.jsonl \
                           train.data.dev_jsonl=dump/label_template/dev.jsonl
