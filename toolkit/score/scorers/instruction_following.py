"""``ifeval``: IFEval-style instruction following rates (Speech-IFEval and VoiceBench's ifeval subset).

Rows carry ``instruction_id_list`` and ``kwargs`` (one dict per instruction), copied from the eval
manifest.  Results (percent):

* ``ifeval_instruction_strict``: followed instructions / instructions; this is Speech-IFEval's
  reported following rate ("ALL" in its report, the closed-ended and creative-writing numbers).
* ``ifeval_prompt_strict``: rows whose every instruction is followed / rows.
* ``ifeval_prompt_loose``, ``ifeval_instruction_loose``: the same under IFEval's loose mode.
* ``ifeval_final``: the mean of those four, VoiceBench's ifeval score.

Speech-IFEval's per-group rates (bullet_lists, change_case, json_format ...) go into ``extra``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from toolkit.score.base import SCORERS, ResultRow, Scorer, ScoreError, percent
from toolkit.score.ifeval import SPEECH_IFEVAL_GROUPS, VARIANTS, evaluate_response, sentence_splitter_name


@SCORERS.register("ifeval")
class IFEvalScorer(Scorer):
    """Instruction-following rates; see the module docstring for the reported numbers."""

    def __init__(self, variant: str = "speech_ifeval"):
        """``variant``: ``speech_ifeval`` (its modified rules) or ``ifeval`` (original IFEval rules);
        a row's own ``ifeval_variant`` field wins (the VoiceBench loader sets ``ifeval``)."""
        if variant not in VARIANTS:
            raise ScoreError(f"score.scorers.ifeval.variant: {variant!r} is not one of {', '.join(VARIANTS)}")
        self.variant = variant

    def score(self, rows: list[dict[str, Any]]) -> list[ResultRow]:
        prompt_strict = prompt_loose = inst_strict = inst_loose = n_inst = n_rows = 0
        unsupported: dict[str, int] = defaultdict(int)
        variants_used: set[str] = set()
        group_total: dict[str, int] = defaultdict(int)
        group_ok: dict[str, int] = defaultdict(int)
        for r in rows:
            ids = r.get("instruction_id_list")
            if not ids:
                raise ScoreError(f"row id={r.get('id')!r}: metric ifeval needs 'instruction_id_list' (and 'kwargs') "
                                 "in the manifest")
            variant = r.get("ifeval_variant") or self.variant  # VoiceBench rows ask for the original rules
            variants_used.add(variant)
            out = evaluate_response(r.get("prediction") or "", ids, r.get("kwargs"), variant)
            for iid in out["unsupported"]:
                unsupported[iid] += 1
            supported = [i for i in ids if i not in out["unsupported"]]
            r["follow_instruction_list"] = out["strict"]
            r["score"] = int(all(out["strict"])) if out["strict"] else None
            if not supported:
                continue
            n_rows += 1
            n_inst += len(supported)
            inst_strict += sum(out["strict"])
            inst_loose += sum(out["loose"])
            prompt_strict += all(out["strict"])
            prompt_loose += all(out["loose"])
            for iid, ok in zip(supported, out["strict"]):
                group = SPEECH_IFEVAL_GROUPS.get(iid, "other")
                group_total[group] += 1
                group_ok[group] += ok
        values = {
            "ifeval_instruction_strict": percent(inst_strict, n_inst),
            "ifeval_prompt_strict": percent(prompt_strict, n_rows),
            "ifeval_instruction_loose": percent(inst_loose, n_inst),
            "ifeval_prompt_loose": percent(prompt_loose, n_rows),
        }
        values["ifeval_final"] = sum(values.values()) / 4 if n_rows else float("nan")
        extra: dict[str, Any] = {"variant": "+".join(sorted(variants_used)) or self.variant, "instructions": n_inst}
        punkt_checks = ("length_constraints:number_sentences", "change_case:capital_word_frequency")
        if any(c in (r.get("instruction_id_list") or []) for r in rows for c in punkt_checks):
            extra["sentence_splitter"] = sentence_splitter_name()  # Punkt; its absence already failed the check
        if unsupported:
            extra["unsupported_instructions_skipped"] = dict(unsupported)
        groups = {g: percent(group_ok[g], group_total[g]) for g in sorted(group_total)}
        results = []
        for metric, value in values.items():
            row_extra = dict(extra)
            if metric == "ifeval_instruction_strict":
                row_extra["groups"] = groups
            results.append(ResultRow("", metric, value, n_rows, None, row_extra))
        return results
