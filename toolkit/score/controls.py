"""Controls for perception scores: does the trained model hear the audio, or answer from the question alone?

Stage 7 puts every closed-set perception score (``metric: closed_set``) beside what it would be without hearing:

- ``silence``: the trained model, with silence of the same length in place of each clip;
- ``untrained``: the same architecture with a freshly initialised adapter (seed ``controls.seed``, the run's
  ``train.seed``), i.e. what training added; an adapter's saved buffers (the ``pooled`` adapter's normalisation
  statistics: facts about the data, not learned weights) come from the trained run, so the control differs in
  weights only;
- ``constant``: the best single answer for the task (its most frequent label; no model);
- ``oracle``: the backbone given the clip's seed description instead of the audio: the text the method's targets
  were written from, so the ceiling the adapter imitates, and the check that a question format is answerable at all
  (an oracle under 80 % means the prompt is unfit for this backbone).

Each is reported with a 95 % Wilson interval; the *perception gain* is the trained score minus the best of the
silence, untrained and constant controls. Control decodes are resumable files under ``<out_dir>/controls/`` and
start over when the model's weights change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONDITIONS = ("silence", "untrained", "constant", "oracle")
ORACLE_FIT = 80.0  # an oracle below this cannot answer the question format from the description


@dataclass
class ControlSettings:
    """The ``score.controls:`` section.

    Args:
        model_dir: the trained model (``config.yaml`` + ``model.safetensors``) that stage 6 decoded with.
        eval_sets: the data dirs stage 6 decoded (their ``eval.jsonl`` and ``seed_descriptions.jsonl``).
        conditions: which controls to run (subset of silence, untrained, constant, oracle).
        metrics: the row metrics that get controls.
        batch_size: conversations per ``generate`` call.
        generation: decoding settings (as stage 6's ``decode.generation``).
        device: where the models run.
        seed: the untrained adapter's initialisation seed (the run's ``train.seed``).
        manifest: eval manifest file name inside each eval set.
    """

    model_dir: str
    eval_sets: list[str]
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))
    metrics: list[str] = field(default_factory=lambda: ["closed_set"])
    batch_size: int = 16
    generation: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    seed: int = 0
    manifest: str = "eval.jsonl"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.conditions) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"score.controls.conditions: unknown {unknown}; valid: {', '.join(CONDITIONS)}")


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion, in percent ((nan, nan) for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = correct / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return 100 * max(0.0, center - half), 100 * min(1.0, center + half)


def _weights_digest(model_dir: Path) -> str:
    from toolkit.models.lalm import WEIGHTS_FILE

    weights = model_dir / WEIGHTS_FILE
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "none"


def _keep_trained_buffers(model: Any, model_dir: Path) -> None:
    """Copy the trained run's adapter buffers (normalisation statistics) into a freshly initialised model."""
    from safetensors.torch import load_file

    from toolkit.models.lalm import WEIGHTS_FILE

    weights = model_dir / WEIGHTS_FILE
    buffers = {f"adapter.{n}" for n, _ in model.adapter.named_buffers()}
    if buffers and weights.is_file():
        state = load_file(str(weights))
        model.load_trainable_state_dict({k: v for k, v in state.items() if k in buffers}, strict=False)


def _fresh_output(out: Path, identity: dict[str, Any]) -> None:
    """Start a control's decode over when it came from other weights or settings (it resumes otherwise)."""
    meta = out.with_name(out.stem + ".meta.json")
    if out.exists() and (not meta.is_file() or json.loads(meta.read_text()) != identity):
        log.info("%s: starting over (another model or setting)", out)
        out.unlink()
    out.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(identity, indent=2))


def _seed_descriptions(eval_set: str) -> dict[str, str]:
    from toolkit.data.datadir import DataDir
    from toolkit.jsonl import read_jsonl

    path = DataDir(eval_set).file("seed_descriptions.jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the oracle control needs the eval set's seed descriptions "
                                f"(run stage 3 on it) or drop 'oracle' from score.controls.conditions")
    return {r["id"]: r["seed_description"] for r in read_jsonl(path)}


def run_controls(settings: ControlSettings, out_dir: str | Path) -> dict[str, dict[str, Path]]:
    """Decode every control condition that needs a model; returns ``{condition: {set: decode file}}``."""
    import numpy as np
    import torch

    from toolkit.audio import load_audio
    from toolkit.config import load_config
    from toolkit.data.datadir import DataDir
    from toolkit.models.eval_decoding import conversation_for, decode_rows
    from toolkit.models.chat import AUDIO_TOKEN
    from toolkit.models.chat_engines.hf import HFChatEngine
    from toolkit.models.lalm import LALM

    model_dir = Path(settings.model_dir)
    rows_by_set = {}
    for eval_set in settings.eval_sets:
        rows = [r for r in DataDir(eval_set).eval_rows(settings.manifest) if r.get("metric") in settings.metrics]
        if rows:
            rows_by_set[eval_set] = rows
    wanted = [c for c in settings.conditions if c != "constant"]
    if not rows_by_set or not wanted:
        return {}
    digest = _weights_digest(model_dir)
    outputs: dict[str, dict[str, Path]] = defaultdict(dict)
    trained = None

    def silent(row: dict[str, Any]) -> list[dict[str, Any]]:
        wave = load_audio(row["audio"], start=row.get("start"), end=row.get("end"))
        return conversation_for(row, np.zeros_like(wave))

    for condition in wanted:
        if condition == "untrained":
            torch.manual_seed(settings.seed)
            model = LALM.from_config(load_config(model_dir / "config.yaml"))
            _keep_trained_buffers(model, model_dir)
            model = model.to(settings.device).eval()
        else:
            if trained is None:
                trained = LALM.from_pretrained(model_dir, device=settings.device)
            model = trained
        for eval_set, rows in rows_by_set.items():
            if condition == "oracle":
                seeds = _seed_descriptions(eval_set)

                def conversation(row: dict[str, Any], seeds: dict[str, str] = seeds) -> list[dict[str, Any]]:
                    prompt = str(row["prompt"])
                    prompt = prompt if AUDIO_TOKEN in prompt else f"{AUDIO_TOKEN}\n{prompt}"
                    description = seeds[row.get("utt_id", row["id"])]
                    return [{"role": "user", "content": prompt.replace(f"{AUDIO_TOKEN}\n", f"{description}\n\n")
                             .replace(AUDIO_TOKEN, description)}]
            elif condition == "silence":
                conversation = silent
            else:
                from toolkit.models.eval_decoding import audio_conversation as conversation
            out = Path(out_dir) / "controls" / condition / f"{Path(eval_set).name}.jsonl"
            identity = {"condition": condition, "weights_sha256": digest if condition in ("silence", "untrained") else None,
                        "seed": settings.seed if condition == "untrained" else None,
                        "generation": settings.generation, "rows": len(rows)}
            _fresh_output(out, json.loads(json.dumps(identity, default=str)))
            log.info("Stage 7: control '%s' on %s (%d rows) -> %s", condition, eval_set, len(rows), out)
            decode_rows(HFChatEngine.around(model, settings.generation), rows, out, batch_size=settings.batch_size,
                        conversation=conversation)
            outputs[condition][Path(eval_set).name] = out
        if condition == "untrained":
            del model
    return dict(outputs)


def _accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from toolkit.score.base import build_scorer

    by_metric: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_metric[r["metric"]].append(dict(r))
    correct = n = 0
    for metric, group in by_metric.items():
        build_scorer(metric).score(group)
        correct += sum(int(r.get("score") or 0) for r in group)
        n += len(group)
    low, high = wilson_interval(correct, n)
    return {"correct": correct, "n": n, "value": 100.0 * correct / n if n else float("nan"), "ci95": [low, high]}


def best_constant(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The single answer that scores best on ``rows``: their most frequent reference (ties: alphabetical)."""
    counts = Counter(str(r["reference"]) for r in rows)
    if not counts:
        return {"correct": 0, "n": 0, "value": float("nan"), "ci95": [float("nan")] * 2, "answer": None}
    answer = min(counts, key=lambda k: (-counts[k], k))
    low, high = wilson_interval(counts[answer], len(rows))
    return {"correct": counts[answer], "n": len(rows), "value": 100.0 * counts[answer] / len(rows),
            "ci95": [low, high], "answer": answer}


def control_table(trained: dict[str, Sequence[dict[str, Any]]], controls: dict[str, dict[str, Path]],
                  conditions: Sequence[str], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One entry per (set, task): the trained score, each control, the oracle and the perception gain."""
    from toolkit.jsonl import read_jsonl

    table = []
    for set_name, rows in trained.items():
        rows = [r for r in rows if r.get("metric") in metrics]
        tasks = sorted({str(r.get("task") or r.get("metric")) for r in rows})
        control_rows = {c: read_jsonl(files[set_name]) for c, files in controls.items() if set_name in files}
        for task in tasks:
            def of(task_rows: Sequence[dict[str, Any]], task: str = task) -> list[dict[str, Any]]:
                return [r for r in task_rows if str(r.get("task") or r.get("metric")) == task]

            closed = all(r.get("metric") == "closed_set" for r in of(rows))
            entry: dict[str, Any] = {"set": set_name, "task": task, "metric": "closed_set" if closed else
                                     str(of(rows)[0].get("metric")), "trained": _accuracy(of(rows))}
            for condition in conditions:
                if condition == "constant":
                    if closed:  # one answer for every clip; a rule-checked answer (ifeval) has no such control
                        entry["constant"] = best_constant(of(rows))
                elif condition in control_rows:
                    entry[condition] = _accuracy(of(control_rows[condition]))
            if not closed:  # instruction following: the trained rate beside the backbone's own (the oracle)
                table.append(entry)
                continue
            baselines = [entry[c]["value"] for c in ("silence", "untrained", "constant") if c in entry]
            best = max(baselines) if baselines else float("nan")
            entry["best_control"] = best
            entry["perception_gain"] = entry["trained"]["value"] - best
            if "oracle" in entry:
                headroom = entry["oracle"]["value"] - best
                entry["share_of_oracle_gain"] = (100.0 * entry["perception_gain"] / headroom) if headroom > 0 else None
                entry["prompt_fit"] = entry["oracle"]["value"] >= ORACLE_FIT
            table.append(entry)
    return table


def render_controls(table: Sequence[dict[str, Any]]) -> str:
    """The RESULTS.md section: every perception score beside its controls, with 95 % intervals."""
    def cell(stat: dict[str, Any] | None) -> str:
        if not stat or stat["n"] == 0:
            return "-"
        low, high = stat["ci95"]
        return f"{stat['value']:.1f} [{low:.0f}, {high:.0f}]"

    lines = ["## Perception controls", "",
             "Closed-set accuracy (%) with 95 % Wilson intervals. *silence*: the trained model hearing silence; "
             "*untrained*: a freshly initialised adapter; *constant*: the best single answer; *oracle*: the backbone "
             "reading the clip's seed description instead of the audio (below 80 % the question format is unfit for "
             "this backbone). *gain*: trained minus the best of silence, untrained and constant; *of oracle*: that gain "
             "as a share of the oracle's.", "",
             "| set | task | n | trained | silence | untrained | constant | oracle | gain | of oracle |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    followed = [e for e in table if "perception_gain" not in e]
    for e in table:
        if "perception_gain" not in e:
            continue
        share = e.get("share_of_oracle_gain")
        constant = e.get("constant")
        const_cell = cell(constant) + (f" ({constant['answer']})" if constant and constant.get("answer") else "")
        oracle = cell(e.get("oracle")) + ("" if e.get("prompt_fit", True) else " unfit")
        lines.append(f"| {e['set']} | {e['task']} | {e['trained']['n']} | {cell(e['trained'])} | {cell(e.get('silence'))} | "
                     f"{cell(e.get('untrained'))} | {const_cell} | {oracle} | {e['perception_gain']:+.1f} | "
                     f"{'-' if share is None else f'{share:.0f} %'} |")
    if followed:
        lines += ["", "Instruction following (% of prompts whose rule-checked constraint is followed, strict): the "
                  "trained model hearing the audio beside the backbone reading the seed description (its own rate).",
                  "", "| set | task | n | trained | silence | untrained | backbone + description |", "|---|---|---|---|---|---|---|"]
        for e in followed:
            lines.append(f"| {e['set']} | {e['task']} | {e['trained']['n']} | {cell(e['trained'])} | "
                         f"{cell(e.get('silence'))} | {cell(e.get('untrained'))} | {cell(e.get('oracle'))} |")
    return "\n".join(lines) + "\n"
