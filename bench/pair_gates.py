"""The yardstick of issue #18: instantiated pairs labeled by reading, and each gate measured against the labels.

    python -m bench.pair_gates collect RUN_DIR --name sample   # every instantiated pair of a run -> JSONL
    python -m bench.pair_gates measure                         # gates vs labels: precision / recall / table
    python -m bench.pair_gates measure --judge URL             # + judge.v4's likelihood lift (local vLLM)

`collect` takes every pair of a run that has an instruction and an answer (accepted, or rejected after both
were built; not only the judged ones) as the stage wrote it, and evaluates every gate on it with the stage's
own pure functions -- not stopping at the first failing check, so each gate is measured on every pair. It
writes bench/labeled/<name>.jsonl with `label` and `why` empty; a person fills them in by reading
(RUBRIC.md beside the files says how). Files collected before this form (sample, sample-v1, dolly, dolly-v1,
other) rebuilt the answer from the model's sentence numbers; their gates are those of that time.

`measure` reads every labeled file and prints, per gate, how many pairs it rejects, its precision (share of
its rejects labeled junk) and recall (share of the junk it rejects), then the whole stack, and the
keepable share against the relevance threshold (`instantiate.min_relevance`). AUCs for keep vs junk:
relevance, slot coverage and (with --judge) judge.v4's lift and their combination.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from bench.harness.data import BENCH
from bench.harness.scoring import auc, likelihood_lift, run_table
from fi_spark.config import EmbedConfig
from fi_spark.instantiate import pair_gates
from fi_spark.instantiate import prompts as gen
from fi_spark.text import instructions
from fi_spark.text.tags import parse_template

LABELED = BENCH / "labeled"
MAX_SOURCE_CHARS, MAX_ANSWER_CHARS, MAX_INSTRUCTION_CHARS = 3000, 700, 200  # the local profile's
GATES = (
    "placeholder", "needs_input", "not_extractive", "not_a_request", "instruction_cut", "slot_value_empty",
    "slot_not_in_source", "answer_fragment", "answer_misses_slots", "answer_type_mismatch", "answer_misses_question",
)  # fmt: skip


def features(pair: dict[str, Any], template: str, shown: str) -> dict[str, Any]:
    """Every gate's verdict on one pair as the stage wrote it (instruction, answer, slot values)."""
    instruction, text = pair["instruction"], pair["answer"]
    values = [str(v.get("value", "")) for v in pair.get("slot_values") or []]
    problem = instructions.request_problem(instruction, extractive=True)
    return {
        "placeholder": bool(problem and problem[0] == "placeholder"),
        "needs_input": bool(problem and problem[0] == "needs_input"),
        "not_extractive": bool(problem and problem[0] == "not_extractive"),
        "not_a_request": bool(problem and problem[0] == "not_a_request"),
        "instruction_cut": len(instruction) >= MAX_INSTRUCTION_CHARS,
        "slot_value_empty": bool(pair_gates.empty_values(parse_template(template).descriptions, values)),
        "slot_not_in_source": bool(pair_gates.values_missing_from(values, shown)),
        "answer_fragment": pair_gates.fragment(text) is not None,
        "answer_misses_slots": bool(pair_gates.values_missing_from(values, text)),
        "answer_type_mismatch": pair_gates.answer_type_problem(instruction, text, values) is not None,
        "answer_misses_question": pair_gates.question_coverage(template, text) < 0.5,
    }


def collect(run: Path, name: str) -> None:
    """Every pair of a run with text (accepted, or rejected after its instruction and answer were built)."""
    templates = {r["template_id"]: r["template"] for r in run_table(run, "templates")}
    chunks = {r["chunk_id"]: r["text"] for r in run_table(run, "chunks")}
    docs = {r["doc_id"]: r["text"] for r in run_table(run, "documents")}
    rows = {r["pair_id"]: {**r, "reason": None} for r in run_table(run, "pairs")}
    for r in run_table(run, "pair_rejects"):
        if r.get("instruction") and r.get("answer") and not r["reason"].startswith("llm_"):
            rows.setdefault(r["pair_id"], r)
    out = []
    for pid, r in sorted(rows.items()):
        source = chunks.get(r.get("chunk_id") or "") or docs.get(r["doc_id"]) or ""
        shown = gen.excerpts.shown_text(source, MAX_SOURCE_CHARS)
        template = templates.get(r["template_id"], "")
        pair = {"instruction": r["instruction"], "answer": r["answer"], "slot_values": r.get("slot_values") or []}
        out.append({"id": f"{name}-{pid[:12]}", "set": name, "doc_id": r["doc_id"], "template": template,
                    "stage_reason": r["reason"], "instruction": r["instruction"], "answer": r["answer"],
                    "slot_values": [v.get("value") for v in pair["slot_values"]],
                    "gates": features(pair, template, shown),
                    "slot_coverage": _coverage([v.get("value", "") for v in pair["slot_values"]], r["answer"]),
                    "label": None, "why": None})  # fmt: skip
    _relevance(out)
    LABELED.mkdir(exist_ok=True)
    path = LABELED / f"{name}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in out)
    print(f"pair_gates: {len(out)} pairs with text of {run} -> {path}")


def _coverage(values: list[str], text: str) -> float:
    """Mean share of each value's content words found in `text` (1.0 with no content words)."""
    words = set(pair_gates.content_words(text))
    shares = [sum(w in words for w in c) / len(c) for c in (pair_gates.content_words(v) for v in values) if c]
    return round(sum(shares) / len(shares), 3) if shares else 1.0


def _relevance(rows: list[dict[str, Any]]) -> None:
    from fi_spark.instantiate.relevance import relevance

    scores = relevance(EmbedConfig(), [r["instruction"] for r in rows], [r["answer"] for r in rows])
    for row, score in zip(rows, scores, strict=True):
        row["relevance"] = score


def load_labeled() -> list[dict[str, Any]]:
    rows = []
    for path in sorted(LABELED.glob("*.jsonl")):
        rows.extend(json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return [r for r in rows if r.get("label") in ("keep", "junk")]


def measure(judge_url: str | None, model: str, min_relevance: float, min_coverage: float) -> None:
    rows = load_labeled()
    junk = [r for r in rows if r["label"] == "junk"]
    print(f"pair_gates: {len(rows)} labeled pairs ({len(rows) - len(junk)} keep, {len(junk)} junk) "
          f"from {sorted({r['set'] for r in rows})}")  # fmt: skip
    for r in rows:  # every gate as the code stands now, on the pair's text (slot_not_in_source: as collected)
        pair = {**r, "slot_values": [{"value": v or ""} for v in r.get("slot_values") or []]}
        in_source = r["gates"].get("slot_not_in_source", False)
        r["gates"] = {**features(pair, r.get("template") or "", ""), "slot_not_in_source": in_source}
        r["gates"]["answer_misses_slots"] = r["slot_coverage"] < min_coverage
        r["gates"]["off_topic"] = r["relevance"] < min_relevance
        if not r.get("slot_values"):  # a reject row keeps no slot values: its slot gates cannot be measured
            r["gates"].update(slot_value_empty=False, answer_misses_slots=False)
    print("\n| gate | rejects | precision (junk among them) | recall (of all junk) |\n|---|---|---|---|")
    for gate in (*GATES, "off_topic"):
        _row(gate, rows, junk, lambda r, g=gate: r["gates"][g])
    _row("all gates", rows, junk, lambda r: any(r["gates"].values()))
    kept = [r for r in rows if not any(r["gates"].values())]
    share = sum(r["label"] == "keep" for r in kept) / len(kept) if kept else 0.0
    print(f"\nafter every gate: {len(kept)} pairs pass, {share:.0%} of them keepable "
          f"(min_relevance {min_relevance}, min_slot_coverage {min_coverage})")  # fmt: skip
    print("\n| min_relevance | pairs passing the other gates and it | keepable share |\n|---|---|---|")
    others = [r for r in rows if not any(v for k, v in r["gates"].items() if k != "off_topic")]
    for t in (0.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        sel = [r for r in others if r["relevance"] >= t]
        print(f"| {t:.2f} | {len(sel)} | {sum(r['label'] == 'keep' for r in sel) / len(sel):.0%} |" if sel else
              f"| {t:.2f} | 0 | - |")  # fmt: skip
    scores = {"relevance": [r["relevance"] for r in rows], "slot_coverage": [r["slot_coverage"] for r in rows]}
    if judge_url:
        lifts = asyncio.run(likelihood_lift(judge_url, model, rows))
        scores["judge.v4 lift"] = [x if x is not None else -9.0 for x in lifts]
        scores["relevance + lift"] = [a + b for a, b in zip(scores["relevance"], scores["judge.v4 lift"], strict=True)]
        print("\n| min_relevance | passing the other gates, it and judge.v4 >= 4 (lift >= 0.2) | keepable share |")
        print("|---|---|---|")
        for t in (0.0, 0.4, 0.5, 0.55, 0.6):
            sel = [r for r, lift in zip(rows, scores["judge.v4 lift"], strict=True)
                   if r in others and r["relevance"] >= t and lift >= 0.2]  # fmt: skip
            share = f"{sum(r['label'] == 'keep' for r in sel) / len(sel):.0%}" if sel else "-"
            print(f"| {t:.2f} | {len(sel)} | {share} |")
    print("\n| score | AUC keep vs junk (all labeled pairs) |\n|---|---|")
    for name, values in scores.items():
        pos = [v for v, r in zip(values, rows, strict=True) if r["label"] == "keep"]
        neg = [v for v, r in zip(values, rows, strict=True) if r["label"] == "junk"]
        print(f"| {name} | {auc(pos, neg):.2f} |")


def _row(name: str, rows: list[dict[str, Any]], junk: list[dict[str, Any]], fires: Any) -> None:
    hit = [r for r in rows if fires(r)]
    caught = sum(r["label"] == "junk" for r in hit)
    lost = [r["instruction"][:50] for r in hit if r["label"] == "keep"]
    name += f" (rejects keep: {'; '.join(lost)})" if lost else ""
    precision = f"{caught / len(hit):.2f}" if hit else "-"
    recall = f"{caught / len(junk):.2f}" if junk else "-"
    print(f"| {name} | {len(hit)} | {precision} | {recall} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("run", type=Path)
    c.add_argument("--name", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--judge", default=None, help="OpenAI-compatible URL of the local model (judge.v4 lift)")
    m.add_argument("--model", default="smollm2-135m-instruct")
    m.add_argument("--min-relevance", type=float, default=0.45)
    m.add_argument("--min-slot-coverage", type=float, default=0.5)
    args = ap.parse_args()
    if args.cmd == "collect":
        collect(args.run, args.name)
    else:
        measure(args.judge, args.model, args.min_relevance, args.min_slot_coverage)


if __name__ == "__main__":
    main()
