"""Does the judge discriminate? Score real pairs of a run and the same pairs with a mismatched answer.

Usage: .venv/bin/python bench/judge_scores.py --run ./fi-spark-out [--url http://localhost:8011/v1]
       [--limit 40] [--rationale]
       .venv/bin/python bench/judge_scores.py --pairs pairs.jsonl   (rows: doc_id, instruction, answer, source)

Reads a finished run's `pairs` and `pair_rejects` (rejects keep the model's instruction and answer, so
the instantiator's real output is judged whether or not it passed the grounding checks), with the
matched chunk as the source text, as the judge stage does. Each pair is judged twice with the judge
stage's own prompt and request shape (judge.v2, one constrained score token with 5 logprobs; with
--rationale the audit shape): as written, and with the answer of a pair from another document (a
control that a judge able to read should score low). Prints the score distribution and mean expected
score of both sets, the share kept at >= 4, and the AUC of the expected score (real vs mismatched:
0.5 = no discrimination). Sends requests straight through fi_spark.llm.client (no Spark); the last
line is a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fi_spark.config import LLMConfig, load_prompt  # noqa: E402
from fi_spark.generate import judge as gen  # noqa: E402
from fi_spark.llm.adapter import Adapter  # noqa: E402
from fi_spark.llm.client import LLMClient  # noqa: E402
from fi_spark.llm.types import LLMRequest, Sampling, request_id  # noqa: E402

SCALE = (1, 5)


def table(run: Path, name: str) -> list[dict]:
    """Rows of a run's table (Delta or Parquet: the data files under tables/<name>)."""
    files = [str(p) for p in (run / "tables" / name).rglob("*.parquet") if "_delta_log" not in p.parts]
    return ds.dataset(files, format="parquet").to_table().to_pylist() if files else []


def load_pairs(run: Path, limit: int) -> list[dict]:
    """Pairs (passed or rejected with text) with their chunk text, in pair_id order."""
    chunks = {r["chunk_id"]: r["text"] for r in table(run, "chunks")}
    rows = {r["pair_id"]: r for r in table(run, "pairs")}
    for r in table(run, "pair_rejects"):
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


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a real pair's expected score > a mismatched one's), ties count half."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


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
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="a finished run folder (pairs + pair_rejects)")
    src.add_argument("--pairs", type=Path, help="JSONL of doc_id, instruction, answer, source")
    ap.add_argument("--url", default="http://localhost:8011/v1")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--rationale", action="store_true")
    args = ap.parse_args()
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
