#!/usr/bin/env bash
# The corpus-independent DeSTA2.5 recipe (ESPnet's TEMPLATE equivalent). Shell only orders stages; every
# stage is `python -m toolkit.bin.<stage> --config CONF key=value ...` and keeps its own done marker.
#
#   Stage 1: data prep            corpus           -> data/<set>/{wav.scp,text,utt2spk,utt2dur,metadata.jsonl}
#   Stage 2: audio check          data/<set>       -> data/<set>/{bad_utts,utt2dur}
#   Stage 3: seed descriptions    data/<set>       -> data/<set>/seed_descriptions.jsonl
#   Stage 4: self-generation      seed descriptions -> <selfgen.output_dir>/<set>.jsonl (or .shard<i>of<n>.jsonl)
#   Stage 5: training             self-generated rows -> exp/<tag>/train (TensorBoard: exp/<tag>/train/tb)
#   Stage 6: decoding             eval sets        -> exp/<tag>/decode/<set>/decode.jsonl
#   Stage 7: scoring              decoded rows     -> exp/<tag>/RESULTS.md, results.json
#   Stage 8: export               trained model    -> exp/<tag>/export (LALM.from_pretrained)
#   Stage 9: demo                 exported model   -> a local web demo (not run by default)
#
#   A plain rerun skips stages already done: each stage checks the marker it wrote last beside its outputs
#   (e.g. exp/<tag>/train/.done, exp/<tag>/score.done, data/<set>/.done) and says which; delete that file to
#   redo the stage. --stage N (or --force) redoes stages N..stop_stage.
#
# Usage: recipes/desta25.sh --config conf/desta25.yaml [--stage 1] [--stop_stage 8] [--tag TAG]
#                           [--ngpu 0] [--nshards 1] [--cmd local|slurm|ray] [--cmd_conf FILE] [--force]
#                           [--stage1 prepare_data] [--skip "2 3"] [-- key=value ...]
set -euo pipefail

log() { echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

stage_given=false
config=""; stage=1; stop_stage=8; tag=""; ngpu=0; nshards=1; cmd=local; cmd_conf=""
force=false; stage1=prepare_data; skip=""
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --stage) stage=$2; stage_given=true; shift 2 ;;
    --stop_stage|--stop-stage) stop_stage=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --ngpu) ngpu=$2; shift 2 ;;
    --nshards) nshards=$2; shift 2 ;;
    --cmd) cmd=$2; shift 2 ;;
    --cmd_conf) cmd_conf=$2; shift 2 ;;  # engine resources (default conf/<cmd>.yaml, else recipes/conf/<cmd>.yaml)
    --force) force=true; shift ;;
    --stage1) stage1=$2; shift 2 ;;    # stage 1 module (prepare_benchmark for egs/eval)
    --skip) skip=$2; shift 2 ;;        # stages never run by this recipe, e.g. "2 3 4 5 8"
    -h|--help) usage 0 ;;
    --) shift; overrides+=("$@"); break ;;
    *=*) overrides+=("$1"); shift ;;
    *) echo "unknown argument: $1 (see --help)"; usage 2 ;;
  esac
done
[ -n "$config" ] || { echo "--config is required"; usage 2; }
[ -f "$config" ] || { echo "config file not found: $config"; exit 2; }
tag=${tag:-$(basename "$config" .yaml)}
# A plain rerun skips finished stages (each stage reads its own done marker); naming --stage N, or --force,
# redoes the stages it runs (each stage CLI gets --force: training starts over, decoding and scoring are
# redone; self-generated answers are never deleted, they resume by id).
force_flag=()
if $force || $stage_given; then force_flag=(--force); fi
exp=exp/$tag
mkdir -p "$exp/logs"
overrides=("tag=$tag" "${overrides[@]}")
if [ "$ngpu" -gt 0 ]; then overrides+=("train.accelerator=gpu" "train.devices=$ngpu"); fi
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The repo's venv (made by tools/install.sh) unless $PYTHON says otherwise.
if [ -z "${PYTHON:-}" ] && [ -x "$repo/.venv/bin/python" ]; then python=$repo/.venv/bin/python; else python=${PYTHON:-python}; fi
"$python" -c "import toolkit" 2>/dev/null || { echo "toolkit is not installed for $python: run 'bash $repo/tools/install.sh' (or $repo/run.sh) first"; exit 2; }
case "$cmd" in local|slurm|ray) ;; *) echo "unknown --cmd $cmd (local, slurm or ray)"; exit 2 ;; esac
if [ -z "$cmd_conf" ]; then
  for f in "conf/$cmd.yaml" "$repo/recipes/conf/$cmd.yaml"; do if [ -f "$f" ]; then cmd_conf=$f; break; fi; done
fi
cmd_conf_flag=(); if [ -n "$cmd_conf" ]; then cmd_conf_flag=(--cmd_conf "$cmd_conf"); fi

# run_stage N "what: source -> target" module [extra args]: run the stage's module(s), appending to
# exp/<tag>/logs/stageN.log. The stage itself skips when its done marker is there (and names the file).
run_stage() {
  local n=$1 what=$2 module=$3; shift 3
  case " $skip " in *" $n "*) return 0 ;; esac
  if [ "$stage" -gt "$n" ] || [ "$stop_stage" -lt "$n" ]; then return 0; fi
  log "Stage $n: $what"
  echo "== $(date '+%Y-%m-%dT%H:%M:%S') $0 --config $config --stage $stage --tag $tag" >> "$exp/logs/stage$n.log"
  local m
  if [ "$cmd" = slurm ] && [ "$n" = 5 ]; then  # training as one batch job (srun: Lightning's SLURM launcher)
    if ! "$python" -m toolkit.bin.launch job --modules "$module" --config "$config" --cmd "$cmd" "${cmd_conf_flag[@]}" \
        --log_dir "$exp/logs" --name "stage$n" "${force_flag[@]}" -- "$@" "${overrides[@]}" 2>&1 \
        | tee -a "$exp/logs/stage$n.log"; then
      log "Stage $n failed; see the job log named above. Fix the cause and rerun:" \
        "$0 --config $config --stage $n --tag $tag --nshards $nshards --cmd $cmd"
      exit 1
    fi
    return 0
  fi
  for m in ${module//+/ }; do  # "a+b": run toolkit.bin.a then toolkit.bin.b
    if ! "$python" -m "toolkit.bin.$m" --config "$config" "${force_flag[@]}" "$@" "${overrides[@]}" 2>&1 | tee -a "$exp/logs/stage$n.log"; then
      log "Stage $n failed in toolkit.bin.$m; see $exp/logs/stage$n.log. Fix the cause and rerun: $0 --config $config --stage $n --tag $tag"
      exit 1
    fi
  done
}

# Stages 4 and 6 run as --nshards independent shards on the --cmd engine. toolkit.bin.launch decides from the
# shard markers (no model loads) which shards are not done for this config and model, submits only those,
# reports a failed one with its log and exit state, and checks the complete set.
run_sharded() {
  local n=$1 what=$2 module=$3
  case " $skip " in *" $n "*) return 0 ;; esac
  if [ "$stage" -gt "$n" ] || [ "$stop_stage" -lt "$n" ]; then return 0; fi
  log "Stage $n: $what ($nshards shard(s), cmd=$cmd)"
  if ! "$python" -m toolkit.bin.launch shards --stage "$module" --config "$config" --nshards "$nshards" --cmd "$cmd" \
      "${cmd_conf_flag[@]}" --log_dir "$exp/logs" --name "stage$n" "${force_flag[@]}" -- "${overrides[@]}" 2>&1; then
    log "Stage $n failed (see above for each shard's log); the same command again submits only the missing" \
      "shards: $0 --config $config --stop_stage $stop_stage --tag $tag --nshards $nshards --cmd $cmd"
    exit 1
  fi
}

log "$0 --config $config --stage $stage --stop_stage $stop_stage --tag $tag (outputs: $exp)"
run_stage 1 "data prep ($stage1): corpus -> data dirs" "$stage1"
run_stage 2 "audio check: data dirs -> bad_utts, utt2dur" check_data
run_stage 3 "seed descriptions: metadata -> seed_descriptions.jsonl" seed_descriptions
run_sharded 4 "self-generation: seed descriptions + instructions -> backbone answers (jsonl)" selfgen
run_stage 5 "training: self-generated rows (+ encoder feature cache) -> $exp/train" cache_features+train
run_sharded 6 "decoding: eval sets -> $exp/decode" decode
run_stage 7 "scoring: decoded rows -> $exp/RESULTS.md" score
run_stage 8 "export: trained weights + config -> $exp/export" export
if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  log "Stage 9: demo: $exp/export -> web demo"
  "$python" -m toolkit.bin.demo --model "$exp/export"
fi
if [ -f "$exp/RESULTS.md" ] && [ "$stop_stage" -ge 7 ]; then
  log "Results ($exp/RESULTS.md):"; cat "$exp/RESULTS.md"
  if [ -d "$exp/train/tb" ]; then log "TensorBoard: tensorboard --logdir $exp/train/tb"; fi
fi
