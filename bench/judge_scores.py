"""Does the judge discriminate? Score real pairs of a run and the same pairs with a mismatched answer.

Usage: python -m bench.judge_scores --run ./fi-spark-out [--url http://localhost:8011/v1]
       [--limit 40] [--rationale]
       python -m bench.judge_scores --pairs pairs.jsonl   (rows: doc_id, instruction, answer, source)
       python -m bench.judge_scores --compare [--pairs pairs.jsonl] [--sample 40]

Reads a finished run's `pairs` and `pair_rejects` (rejects keep the model's instruction and answer, so
the instantiator's real output is judged whether or not it passed the grounding checks), with the
matched chunk as the source text, as the judge stage does. Each pair is judged twice with the judge
stage's own prompt and request shape (judge.v2, one constrained score token with 5 logprobs; with
--rationale the audit shape): as written, and with the answer of a pair from another document (a
control that a judge able to read should score low). Prints the score distribution and mean expected
score of both sets, the share kept at >= 4, and the AUC of the expected score (real vs mismatched:
0.5 = no discrimination). Sends requests straight through fi_spark.llm.client (no Spark); the last
line is a one-line summary.

--compare measures four judge request shapes side by side on the same pairs (below) and prints one
table row each: AUC of the expected score (real vs mismatched), the share kept at score >= 4 for real
and mismatched pairs, and the generated tokens per pair:
  a  judge.v2: the 5-point rubric with the document, one constrained score token;
  b  two yes/no questions with the document ("does the ANSWER respond to the INSTRUCTION?", "is it
     supported by the DOCUMENT?"), one constrained token each, score = 1 + 4 * P(yes1) * P(yes2);
  c  one yes/no question without the document, zero-shot, score = 1 + 4 * P(yes);
  d  judge.v3: c with two few-shot examples (one good pair, one mismatched);
  e  not a question (a lead, not wired into the stage): the answer's likelihood lift from the instruction,
     mean log P(answer | instruction) - mean log P(answer | "Say something."), read with vLLM's
     completions `prompt_logprobs` (SmolLM2's ChatML written out), one generated token per request, two
     requests; only its AUC is reported (it has no 1-5 mapping, so kept = -).
The pairs: --sample N real pairs built from the bundled sample (fi_spark/resources/sample): for each
article title in turn, its next paragraph (by id) gives a question from the title ("What can you
tell me about <title>?" and two rewordings) and, as the answer, the paragraph's first sentences
(up to ~300 characters); the mismatched twin keeps the question and takes the answer of a paragraph
from another article. With --pairs, those rows (real instantiated pairs) and their mismatched twins
(another document's answer) are added and also reported on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
from collections import Counter
from pathlib import Path

from bench.harness.data import SAMPLE
from bench.harness.scoring import auc, likelihood_lift, run_table
from fi_spark.config import LLMConfig, PromptSpec, load_prompt
from fi_spark.judge import rubric as gen
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.types import LLMRequest, Sampling, request_id

SCALE = (1, 5)


def load_pairs(run: Path, limit: int) -> list[dict]:
    """Pairs (passed or rejected with text) with their chunk text, in pair_id order."""
    chunks = {r["chunk_id"]: r["text"] for r in run_table(run, "chunks")}
    rows = {r["pair_id"]: r for r in run_table(run, "pairs")}
    for r in run_table(run, "pair_rejects"):
        if r["instruction"] and r["answer"] and not r["reason"].startswith("llm_"):
            rows.setdefault(r["pair_id"], {**r, "rejected": r["reason"]})
    out = [r for _, r in sorted(rows.items()) if chunks.get(r["chunk_id"])]
    for r in out:
        r["source"] = chunks[r["chunk_id"]]
    return out[:limit]


def mismatched(pairs: list[dict]) -> list[dict]:
    """Each pair with the answer of the next pair that comes from another document."""
    out = []
    for i, p in enumerate(pairs):
        other = next((q for q in pairs[i + 1 :] + pairs[:i] if q["doc_id"] != p["doc_id"]), None)
        if other is not None:
            out.append({**p, "answer": other["answer"]})
    return out


async def judge_all(url: str, model: str, pairs: list[dict], rationale: bool) -> list[gen.JudgeVerdict]:
    spec = load_prompt("judge.v2")
    ad = Adapter(
        model=model,
        sampling=Sampling(max_tokens=200 if rationale else gen.SCORE_MAX_TOKENS, top_logprobs=5),
        response_schema=gen.response_schema(SCALE, rationale),
    )
    reqs = []
    for i, p in enumerate(pairs):
        m = gen.build_messages(spec, p["instruction"], p["answer"], p["source"], SCALE, 3000, rationale)
        reqs.append(LLMRequest(id=request_id(model=model, stage="bench", params=ad.id_params(), messages=m),
                               messages=m, key=str(i)))  # fmt: skip
    async with LLMClient(LLMConfig(concurrency=4, request_timeout_s=600), [url], ad) as client:
        results = await client.complete_all(reqs)
    return [
        gen.parse_verdict(r.parsed or r.content, r.logprobs, SCALE)
        if r.ok
        else gen.JudgeVerdict(None, None, r.error_reason)
        for r in results
    ]


QUESTIONS = ("What can you tell me about {t}?", "Give me some facts about {t}.", "Explain something about {t}.")
RESPONDS = """INSTRUCTION: {instruction}
ANSWER: {answer}
Does the ANSWER respond to the INSTRUCTION? Reply yes or no."""
SUPPORTED = """DOCUMENT:
\"\"\"
{document}
\"\"\"
ANSWER: {answer}
Is the ANSWER supported by the DOCUMENT? Reply yes or no."""
SYSTEM = "You check question/answer pairs. Reply yes or no."


def first_sentences(text: str, limit: int = 300) -> str:
    """The leading sentences of `text` that fit in `limit` characters (at least one sentence, cut at limit)."""
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    out = parts[0]
    for part in parts[1:]:
        if len(out) + 1 + len(part) > limit:
            break
        out += " " + part
    return out[:limit]


def sample_pairs(n: int) -> tuple[list[dict], list[dict]]:
    """n real pairs from the bundled sample (title question, the paragraph's first sentences) and their twins."""
    rows = [json.loads(x) for x in (SAMPLE / "documents.jsonl").read_text().splitlines()]
    by_title: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        title, _, body = r["text"].partition("\n\n")
        if body.strip() and len(body) > 80:
            by_title.setdefault(title.strip(), []).append(
                {"doc_id": r["id"], "title": title.strip(), "source": r["text"], "answer": first_sentences(body)}
            )
    titles, real = sorted(by_title), []
    for turn in range(max(len(v) for v in by_title.values())):
        for t in titles:
            if len(real) < n and turn < len(by_title[t]):
                q = QUESTIONS[len(real) % len(QUESTIONS)].format(t=t)
                real.append({**by_title[t][turn], "instruction": q})
    control = []
    for i, p in enumerate(real):
        other = next(q for q in real[i + 1 :] + real[:i] if q["title"] != p["title"])
        control.append({**p, "answer": other["answer"]})
    return real, control


def _spec(user: str, examples: list | None = None) -> PromptSpec:
    return PromptSpec(name="judge", version="bench", system=SYSTEM, user=user, examples=examples or [],
                      judge_style="yes_no")  # fmt: skip


async def _send(url: str, model: str, ad: Adapter, messages: list[list[dict]]) -> list:
    reqs = [LLMRequest(id=request_id(model=model, stage="bench", params=ad.id_params(), messages=m),
                       messages=m, key=str(i)) for i, m in enumerate(messages)]  # fmt: skip
    async with LLMClient(LLMConfig(concurrency=8, request_timeout_s=600), [url], ad) as client:
        return await client.complete_all(reqs)


async def candidate(url: str, model: str, name: str, pairs: list[dict]) -> tuple[list[float | None], list, int]:
    """Expected scores (None: unusable), integer scores and generated tokens for one request shape."""
    if name == "a":
        ad = Adapter(model=model, sampling=Sampling(max_tokens=gen.SCORE_MAX_TOKENS, top_logprobs=5),
                     response_schema=gen.score_schema(*SCALE))  # fmt: skip
        spec = load_prompt("judge.v2")
        msgs = [gen.build_messages(spec, p["instruction"], p["answer"], p["source"], SCALE, 3000, False) for p in pairs]
        res = await _send(url, model, ad, msgs)
        vs = [gen.parse_verdict(r.parsed or r.content, r.logprobs, SCALE) if r.ok else None for r in res]
        return [v.expected_score if v else None for v in vs], [v.score if v else None for v in vs], _tokens(res)
    ad = Adapter(model=model, sampling=Sampling(max_tokens=gen.YES_NO_MAX_TOKENS, top_logprobs=5),
                 response_schema=gen.yes_no_schema())  # fmt: skip
    specs = {"b": [_spec(RESPONDS), _spec(SUPPORTED)], "c": [_spec(RESPONDS)], "d": [load_prompt("judge.v3")]}[name]
    p_yes: list[float | None] = [1.0] * len(pairs)
    tokens = 0
    for spec in specs:
        msgs = [gen.build_yes_no_messages(spec, p["instruction"], p["answer"], p["source"], 3000) for p in pairs]
        res = await _send(url, model, ad, msgs)
        tokens += _tokens(res)
        for i, r in enumerate(res):
            v = gen.parse_yes_no(r.parsed or r.content, r.logprobs, (0, 1)) if r.ok else None
            prev = p_yes[i]
            p_yes[i] = prev * v.expected_score if prev is not None and v and v.expected_score is not None else None
    expected = [None if p is None else SCALE[0] + (SCALE[1] - SCALE[0]) * p for p in p_yes]
    return expected, [None if e is None else math.floor(e + 0.5) for e in expected], tokens


def _tokens(results: list) -> int:
    return sum(getattr(r, "completion_tokens", 0) or 0 for r in results)


def compare(args: argparse.Namespace, extra: list[dict]) -> None:
    real, control = sample_pairs(args.sample)
    extra_control = mismatched(extra)
    sets = {"sample": (real, control), "instantiated": (extra, extra_control)} if extra else {"sample": (real, control)}
    pairs = real + control + extra + extra_control
    print(f"{len(real)} real + {len(control)} mismatched sample pairs, {len(extra)} + {len(extra_control)} "
          f"instantiated pairs from {args.pairs}")  # fmt: skip
    print(f"{'cand':<5}{'set':<14}{'AUC':>6}{'kept real':>12}{'kept mism':>12}{'unusable':>9}{'tok/pair':>9}{'s':>6}")
    aucs: dict[str, float] = {}
    for name in args.candidates:
        t0 = time.time()
        if name == "e":
            expected, tokens = asyncio.run(likelihood_lift(args.url, args.model, pairs)), 2 * len(pairs)
            scores: list = [None] * len(pairs)
        else:
            expected, scores, tokens = asyncio.run(candidate(args.url, args.model, name, pairs))
        offset = 0
        rows = {}
        for label, (pos, neg) in sets.items():
            e_pos, e_neg = (
                expected[offset : offset + len(pos)],
                expected[offset + len(pos) : offset + len(pos) + len(neg)],
            )
            s_pos, s_neg = scores[offset : offset + len(pos)], scores[offset + len(pos) : offset + len(pos) + len(neg)]
            offset += len(pos) + len(neg)
            rows[label] = (e_pos, e_neg, s_pos, s_neg)
        if extra:
            rows["all"] = tuple(sum((rows[k][j] for k in sets), []) for j in range(4))  # type: ignore[assignment]
        for label, (e_pos, e_neg, s_pos, s_neg) in rows.items():
            a = auc([e for e in e_pos if e is not None], [e for e in e_neg if e is not None])
            if label == ("all" if extra else "sample"):
                aucs[name] = a
            bad = sum(e is None for e in e_pos + e_neg)
            kp, kn = (f"{sum(s is not None and s >= 4 for s in ss)}/{len(ss)}" if name != "e" else "-"
                      for ss in (s_pos, s_neg))  # fmt: skip
            print(f"{name:<5}{label:<14}{a:6.2f}{kp:>12}{kn:>12}{bad:>9}"
                  f"{tokens / len(pairs):9.1f}{time.time() - t0:6.0f}", flush=True)  # fmt: skip
    best = max(aucs, key=lambda k: (aucs[k] == aucs[k], aucs[k]))  # NaN (no usable score) ranks last
    print(f"judge_scores: compare best AUC {aucs[best]:.2f} (candidate {best}); " + ", ".join(
        f"{k} {v:.2f}" for k, v in aucs.items()))  # fmt: skip


def describe(name: str, verdicts: list[gen.JudgeVerdict]) -> tuple[list[float], int]:
    scores = [v.score for v in verdicts if v.score is not None]
    expected = [v.expected_score for v in verdicts if v.expected_score is not None]
    hist = Counter(scores)
    mean = sum(scores) / len(scores) if scores else float("nan")
    emean = sum(expected) / len(expected) if expected else float("nan")
    kept = sum(s >= 4 for s in scores)
    print(f"{name:>10}: n={len(verdicts)} scores " + " ".join(f"{s}:{hist.get(s, 0)}" for s in range(1, 6))
          + f"  mean {mean:.2f}  expected mean {emean:.2f}  kept>=4 {kept}/{len(verdicts)}"
          + f"  unusable {len(verdicts) - len(scores)}")  # fmt: skip
    return expected, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--run", type=Path, help="a finished run folder (pairs + pair_rejects)")
    src.add_argument("--pairs", type=Path, help="JSONL of doc_id, instruction, answer, source")
    ap.add_argument("--compare", action="store_true", help="table of the request shapes a-d (module docstring)")
    ap.add_argument("--sample", type=int, default=40, help="--compare: real pairs built from the bundled sample")
    ap.add_argument("--candidates", nargs="+", default=["a", "b", "c", "d"], choices=["a", "b", "c", "d", "e"])
    ap.add_argument("--url", default="http://localhost:8011/v1")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--rationale", action="store_true")
    args = ap.parse_args()
    if args.compare:
        rows = [json.loads(x) for x in args.pairs.read_text().splitlines() if x.strip()] if args.pairs else []
        compare(args, [r for r in rows if r.get("instruction") and r.get("answer") and r.get("source")])
        return
    if not (args.run or args.pairs):
        ap.error("one of --run, --pairs or --compare is required")
    if args.pairs:
        rows = [json.loads(line) for line in args.pairs.read_text().splitlines() if line.strip()]
        real = [r for r in rows if r.get("instruction") and r.get("answer") and r.get("source")][: args.limit]
    else:
        real = load_pairs(args.run, args.limit)
    control = mismatched(real)
    checked = f"{sum('rejected' not in p for p in real)} passed the checks" if args.run else "checks not applied"
    print(f"{len(real)} real pairs from {args.run or args.pairs} ({checked}), {len(control)} mismatched")
    verdicts = asyncio.run(judge_all(args.url, args.model, real + control, args.rationale))
    e_real, k_real = describe("real", verdicts[: len(real)])
    e_ctrl, k_ctrl = describe("mismatched", verdicts[len(real) :])
    a = auc(e_real, e_ctrl)
    mean_r = sum(e_real) / len(e_real) if e_real else float("nan")
    mean_c = sum(e_ctrl) / len(e_ctrl) if e_ctrl else float("nan")
    print(f"judge_scores: real expected {mean_r:.2f} vs mismatched {mean_c:.2f}, AUC {a:.2f}, "
          f"kept>=4 real {k_real}/{len(real)} mismatched {k_ctrl}/{len(control)}")  # fmt: skip


if __name__ == "__main__":
    main()
