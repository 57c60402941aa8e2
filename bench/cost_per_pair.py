"""Benchmark: server-seconds per kept pair, the baseline request shape vs the optimized one (issue 12).

On the real local vLLM server (SmolLM2-135M on CPU, port 8011 by default; a fair proxy for relative GPU
cost: its time is prefill and decode, as a GPU's is), a fixed pair set (bench/cost_pairs.json: 120
(template, document) matches, the 3 best of 18 templates for each of 40 sample documents, built once with
`python -m bench.excerpts --build --queries 160 --docs 40 --arms "" --pairs bench/cost_pairs.json`; the
smaller bench/excerpts_pairs.json, 30 over 10, with `--pairs`) goes through instantiate and judge twice, one
shape after the other in one run:

- baseline: instantiate.v1 (template before document, the answer copied verbatim), judge.v1 (the rubric
  with a written rationale first, JSON), requests without a `group` (no affinity);
- optimized: instantiate.v3 (document first, numbered sentences, the answer a sentence range), requests
  grouped by document (affinity) and sent document by document; judged twice on the same instantiations:
  judge.v4 (the likelihood lift: two scoring requests per pair, one generated token each; the local
  profile's judge, used for the last line) and judge.v2 (one constrained score token with logprobs).

Requests are built and answers checked by the stages' own pure functions (fi_spark.instantiate.prompts,
.judge, .likelihood) with the local profile's settings, and sent through fi_spark.llm.client.LLMClient
(bench.harness.real_model's `send`) at the same concurrency for every phase. Only pairs that pass instantiate's
checks are judged; a pair is kept when its score >= judge.threshold (4 of 1-5).

Server-seconds are the ledger's `server_ms` summed (latency of each answered attempt, schema retries
included): at a fixed concurrency on a saturated server they are proportional to the busy time a GPU would
bill. Wall seconds are printed beside them; both include whatever else the shared server serves meanwhile.

Prefix cache: every system message of a shape starts with a run tag (`[run <tag>]`, one per shape and run),
so nothing cached before this run -- an earlier run of this bench, a pipeline run on the same sample -- and
nothing of the other shape is counted as a hit; hits come from within the shape, as they would at scale.
judge.v4 has no system message and is not tagged (its prompts are the instruction and the answer only).
On one server the baseline still gets the hits its prompt order allows (its judge shows the document
before the pair); at scale without affinity a document's requests spread over servers: a conservative
baseline.

    python -m bench.cost_per_pair --save /tmp/cost.json              # about 8 minutes on 2 busy CPU cores
    python -m bench.cost_per_pair --replay /tmp/cost.json            # the tables again, no server
    nice -n 15 python -m bench.cost_per_pair --limit 12 --concurrency 4

With SmolLM2-135M few matches survive both instantiate and judge (on the 30-pair set 0-1 in either shape),
so the comparison lines also divide by the pairs that passed instantiate's checks and by the matches sent
(the same in both shapes). When the baseline keeps no pair its cost per pair is shown as a lower bound (its
total, as if it had kept one) and R as `>R`.

Last line: `cost_per_pair: optimized A s/pair vs baseline B s/pair = R x` (R = B / A; the goal is R >= 3).
"""

from __future__ import annotations

import argparse
import json
import uuid
from dataclasses import asdict
from pathlib import Path

from bench.harness.real_model import (
    COST_PAIRS,
    LOCAL_URL,
    Job,
    Phase,
    instantiate_pairs,
    sampling,
    server_model,
    tagged,
    timed_send,
)
from fi_spark.config import Config, load_config, load_prompt
from fi_spark.judge import likelihood
from fi_spark.judge import rubric as jdg


def judge(cfg: Config, model: str, pairs: list[dict[str, str]], prompt: str, rationale: bool, affinity: bool,
          tag: str, shape: str) -> Phase:  # fmt: skip
    """Judge the instantiated pairs with `prompt` (the stage's request shape for its judge style)."""
    jc, spec = cfg.judge, load_prompt(prompt)
    jdg.check_prompt(spec)
    scale = (jc.scale_min, jc.scale_max)
    phase = Phase(shape, "judge")
    if not pairs:
        return phase
    if spec.judge_style == "likelihood":  # the judge stage's _scoring_requests: cond + free per pair
        conds = [likelihood.scoring_messages(spec.user.format(instruction=p["instruction"]), p["answer"],
                                             spec.system) for p in pairs]  # fmt: skip
        frees = {p["answer"]: likelihood.scoring_messages(spec.neutral, p["answer"], spec.system) for p in pairs}
        answers = list(frees)  # a neutral request is the same for every pair with that answer: sent once
        jobs: list[Job] = [(None, tagged(m, tag), p["doc_id"] if affinity else None) for m, p in zip(conds, pairs)]
        jobs += [(None, tagged(frees[a], tag), None) for a in answers]
        results, wall = timed_send(cfg, model, sampling(cfg, 1, 0.0, score_final_message=True), jobs)
        phase.add(results, wall)
        free_of = dict(zip(answers, results[len(pairs) :], strict=True))
        for p, cond in zip(pairs, results[: len(pairs)], strict=True):
            free = free_of[p["answer"]]
            failed = cond.error_reason or free.error_reason
            verdict = None if failed else likelihood.lift_verdict(cond.logprobs, free.logprobs, p["answer"],
                                                                  spec.lift_edges, scale)  # fmt: skip
            phase.count(keep_reason(failed, verdict, jc.threshold))
        return phase
    schema, max_tokens = jdg.request_shape(spec, scale, rationale, jc.max_rationale_chars, jc.max_tokens)
    jobs = [(schema, tagged(jdg.judge_messages(spec, p["instruction"], p["answer"], p["document"], scale,
                                               jc.max_source_chars, rationale), tag), p["doc_id"] if affinity else None)
            for p in pairs]  # fmt: skip
    samp = sampling(cfg, max_tokens, jc.temperature, top_logprobs=jc.logprobs)
    results, wall = timed_send(cfg, model, samp, jobs)
    phase.add(results, wall)
    for res in results:
        verdict = None if res.error_reason else jdg.judge_verdict(spec, res.parsed or res.content, res.logprobs,
                                                                  scale, jc.max_rationale_chars)  # fmt: skip
        phase.count(keep_reason(res.error_reason, verdict, jc.threshold))
    return phase


def keep_reason(failed: str | None, verdict: jdg.JudgeVerdict | None, threshold: float) -> str | None:
    """None when the pair is kept; else why not (as the judge stage's `decide` names it)."""
    if failed:
        return f"llm_{failed}"
    assert verdict is not None
    if verdict.score is None:
        return verdict.reason or "judge_unparseable"
    return None if verdict.score >= threshold else "below_threshold"


def table(rows: list[tuple[str, list[Phase]]]) -> list[str]:
    """One line per shape and stage plus the shape's total; the kept pairs are the judge's."""
    out = [f"{'shape':<28}{'stage':<13}{'requests':>9}{'prompt tok':>11}{'cached':>8}{'gen tok':>9}{'server-s':>10}"
           f"{'wall-s':>8}{'est GPU-s':>10}{'passed':>8}{'s/kept pair':>12}"]  # fmt: skip
    for label, phases in rows:
        kept = phases[-1].passed
        total = Phase(label, "total", passed=kept)
        for p in phases:
            for name in ("requests", "prompt_tokens", "cached_tokens", "gen_tokens", "server_s", "wall_s"):
                setattr(total, name, getattr(total, name) + getattr(p, name))
        for p in [*phases, total]:
            per = f"{p.server_s / kept:.1f}" if kept else "-"
            out.append(f"{label:<28}{p.stage:<13}{p.requests:>9}{p.prompt_tokens:>11}{p.cached_tokens:>8}"
                       f"{p.gen_tokens:>9}{p.server_s:>10.1f}{p.wall_s:>8.1f}{p.gpu_s:>10.3f}{p.passed:>8}"
                       f"{per:>12}")  # fmt: skip
    return out


def per_pair(phases: list[Phase], what: str = "server_s", of: int | None = -1) -> float:
    """`what` summed over the shape's phases, per row that passed phase `of` (-1: the judge, i.e. kept pairs;
    None: per match sent, the instantiate phase's requests)."""
    n = phases[0].requests if of is None else phases[of].passed
    return sum(getattr(p, what) for p in phases) / n if n else float("inf")


def comparisons(rows: list[tuple[str, list[Phase]]]) -> list[str]:
    """Baseline (first row) vs each optimized row: per kept pair and, as kept counts are small, per pair that
    passed instantiate's checks and per match sent; server-seconds, wall seconds, est. GPU-seconds, generated tokens."""
    out = []
    base = rows[0][1]
    for label, phases in rows[1:]:
        for of, unit in ((-1, "kept pair"), (0, "passed instantiation"), (None, "match sent")):
            cells = []
            for what in ("server_s", "wall_s", "gpu_s", "gen_tokens"):
                b, a = per_pair(base, what, of), per_pair(phases, what, of)
                cells.append(f"{what} {a:.3g} vs {b:.3g} = {ratio(b, a)} x")
            out.append(f"{label} per {unit}: " + "; ".join(cells))
    return out


def ratio(baseline: float, optimized: float) -> str:
    """B / A to one decimal; `inf` when the optimized shape costs nothing per pair, `nan` when neither kept one."""
    if optimized == float("inf"):
        return "nan" if baseline == float("inf") else "0.0"
    return "inf" if optimized == 0 or baseline == float("inf") else f"{baseline / optimized:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=LOCAL_URL)
    parser.add_argument(
        "--pairs", type=Path, default=COST_PAIRS, help="the fixed pair set (python -m bench.excerpts --build)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight, every phase")
    parser.add_argument("--no-tag", action="store_true", help="no run tag: earlier cache entries may count")
    parser.add_argument("--save", type=Path, default=None, help="write the measured phases as JSON")
    parser.add_argument("--replay", type=Path, default=None, help="print the tables of saved phases (no server)")
    args = parser.parse_args()
    if args.replay is not None:
        saved = json.loads(args.replay.read_text(encoding="utf-8"))
        report([(label, [Phase(**p) for p in phases]) for label, phases in saved])
        return
    model = server_model(args.url)
    base = load_config("local")
    cfg = base.model_copy(update={"llm": base.llm.model_copy(update={"endpoints": [args.url],
                                                                    "concurrency": args.concurrency})})  # fmt: skip
    pairs = json.loads(args.pairs.read_text(encoding="utf-8"))[: args.limit]
    print(f"{len(pairs)} (template, document) pairs over {len({p['doc_id'] for p in pairs})} documents; model "
          f"{model}; concurrency {args.concurrency}", flush=True)  # fmt: skip
    run = "" if args.no_tag else uuid.uuid4().hex[:8]
    tag_b, tag_o = (f"{run}b", f"{run}o") if run else ("", "")

    b_inst, b_pairs = instantiate_pairs(cfg, model, pairs, "instantiate.v1", False, tag_b, "baseline")
    print(f"baseline instantiate: {b_inst.passed}/{len(pairs)} passed in {b_inst.wall_s:.0f}s", flush=True)
    b_judge = judge(cfg, model, b_pairs, "judge.v1", True, False, tag_b, "baseline")
    o_inst, o_pairs = instantiate_pairs(cfg, model, pairs, "instantiate.v3", True, tag_o, "optimized")
    print(f"optimized instantiate: {o_inst.passed}/{len(pairs)} passed in {o_inst.wall_s:.0f}s", flush=True)
    o_v4 = judge(cfg, model, o_pairs, "judge.v4", False, True, tag_o, "optimized")
    o_v2 = judge(cfg, model, o_pairs, "judge.v2", False, True, tag_o, "optimized")

    rows = [("baseline v1 + judge.v1", [b_inst, b_judge]), ("optimized v3 + judge.v4", [o_inst, o_v4]),
            ("optimized v3 + judge.v2", [o_inst, o_v2])]  # fmt: skip
    if args.save is not None:
        args.save.write_text(json.dumps([(label, [asdict(p) for p in phases]) for label, phases in rows], indent=1))
    report(rows)


def report(rows: list[tuple[str, list[Phase]]]) -> None:
    """The table, the reasons, the comparisons and the summary line (baseline, optimized v4, optimized v2)."""
    for line in table(rows):
        print(line)
    for label, phases in rows:
        print(f"{label} reasons: " + "; ".join(f"{p.stage} {json.dumps(p.reasons, sort_keys=True)}" for p in phases))
    for line in comparisons(rows):
        print(line)
    b, bounded = baseline_per_pair(rows[0][1])
    shown = f">{b:.1f} (0 kept: its total, as if 1)" if bounded else f"{b:.1f}"
    for label, a in (
        ("with judge.v2 (one score token)", per_pair(rows[2][1])),
        ("cost_per_pair", per_pair(rows[1][1])),
    ):
        mark = ">" if bounded and a != float("inf") else ""
        print(f"{label}: optimized {a:.1f} s/pair vs baseline {shown} s/pair = {mark}{ratio(b, a)} x")


def baseline_per_pair(phases: list[Phase]) -> tuple[float, bool]:
    """The baseline's server-seconds per kept pair; when it kept none, its total as if it had kept one -- a
    lower bound on its true cost per pair, flagged so the ratio prints as a bound (`>R`), never as `inf`."""
    kept, total = phases[-1].passed, sum(p.server_s for p in phases)
    return (total / kept, False) if kept else (total, True)


if __name__ == "__main__":
    main()
