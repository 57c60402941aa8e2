"""Scoring pairs against labels, shared by bench/judge_scores.py and bench/pair_gates.py: a finished run's table
rows, the AUC of a score, and judge.v4's likelihood lift read from a vLLM server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


def run_table(run: Path, name: str) -> list[dict[str, Any]]:
    """Rows of a finished run's table (Delta or Parquet: the data files under tables/<name>), without Spark."""
    files = [str(p) for p in (run / "tables" / name).rglob("*.parquet") if "_delta_log" not in p.parts]
    return ds.dataset(files, format="parquet").to_table().to_pylist() if files else []


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a real pair's expected score > a mismatched one's), ties count half."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


async def likelihood_lift(url: str, model: str, pairs: list[dict[str, Any]]) -> list[float | None]:
    """Mean answer-token logprob with the instruction minus with a neutral request (vLLM `prompt_logprobs`)."""
    import httpx

    sem = asyncio.Semaphore(8)
    base = url.rstrip("/").removesuffix("/v1")

    async def mean_lp(client: httpx.AsyncClient, question: str, answer: str) -> float | None:
        prefix = CHATML.format(q=question)
        async with sem:
            tok = await client.post(f"{base}/tokenize", json={"model": model, "prompt": prefix})
            body = {"model": model, "prompt": prefix + answer, "max_tokens": 1, "prompt_logprobs": 0}
            r = await client.post(f"{url}/completions", json=body)
        n, rows = len(tok.json()["tokens"]), r.json()["choices"][0].get("prompt_logprobs") or []
        vals = [float(next(iter(d.values()))["logprob"]) for d in rows[n:] if d]
        return sum(vals) / len(vals) if vals else None

    async with httpx.AsyncClient(timeout=600) as client:
        cond = await asyncio.gather(*(mean_lp(client, p["instruction"], p["answer"]) for p in pairs))
        free = await asyncio.gather(*(mean_lp(client, "Say something.", p["answer"]) for p in pairs))
    return [None if c is None or u is None else c - u for c, u in zip(cond, free, strict=True)]
