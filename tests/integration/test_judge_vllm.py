"""The one-token judge against the real local vLLM CPU server: a constrained score with its logprobs.

Marked `llm` (see tests/integration/test_llm_vllm.py for the server's first start). Protects what the
judge relies on: vLLM 0.32 honours the choice constraint on the chat API, returns logprobs together with
structured output, and those logprobs are taken after the constraint (every alternative is a score).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from fi_spark.config import LLMConfig, LocalLLMServerConfig, load_prompt
from fi_spark.judge import rubric as gen
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.types import LLMRequest, Sampling, request_id
from fi_spark.serving.local import shared_server

pytestmark = pytest.mark.llm

SOURCE = (
    "The Danube is Europe's second-longest river. It rises in the Black Forest in Germany and flows "
    "about 2,850 kilometres through ten countries before it empties into the Black Sea."
)
PAIRS = [
    ("Where does the Danube rise?", "It rises in the Black Forest in Germany."),
    ("Where does the Danube rise?", "Bananas are rich in potassium."),
]


def test_one_token_score_with_logprobs() -> None:
    """Each verdict is one score token in 1..5 with 5 alternatives, all score tokens; expected_score in range."""
    cfg = LocalLLMServerConfig()
    url, model = shared_server(cfg), cfg.served_model_name
    scale = (1, 5)
    ad = Adapter(
        model=model, sampling=Sampling(max_tokens=gen.SCORE_MAX_TOKENS, top_logprobs=5),
        response_schema=gen.response_schema(scale, rationale=False),
    )  # fmt: skip
    spec = load_prompt("judge.v2")
    reqs = []
    for instruction, answer in PAIRS:
        m = gen.build_messages(spec, instruction, answer, SOURCE, scale, 3000, rationale=False)
        reqs.append(LLMRequest(id=request_id(model=model, stage="t", params=ad.id_params(), messages=m), messages=m))

    async def go() -> list:
        async with LLMClient(LLMConfig(concurrency=2, request_timeout_s=300), [url], ad) as client:
            return await client.complete_all(reqs)

    for r in asyncio.run(go()):
        assert r.ok, (r.error_reason, r.error, r.content)
        assert r.content in {"1", "2", "3", "4", "5"} and r.completion_tokens <= 2
        entries = json.loads(r.logprobs)
        assert entries[0][0] == r.content
        likely = {t for t, lp in entries[0][1].items() if lp > -100}  # masked tokens come back at -9999
        assert len(entries[0][1]) == 5 and likely <= {"1", "2", "3", "4", "5"}
        verdict = gen.parse_verdict(r.parsed, r.logprobs, scale)
        assert verdict.score == int(r.content) and 1.0 <= (verdict.expected_score or 0) <= 5.0


def test_likelihood_judge_prefers_the_answer_that_responds() -> None:
    """On the real server the scoring requests come back with prompt logprobs covering the answer, and the
    answer that responds to the instruction gets a higher lift than an unrelated one (judge.v4's contract)."""
    from fi_spark.judge.likelihood import lift_verdict, scoring_messages

    cfg = LocalLLMServerConfig()
    url, model = shared_server(cfg), cfg.served_model_name
    spec = load_prompt("judge.v4")
    ad = Adapter(model=model, sampling=Sampling(max_tokens=1, score_final_message=True))
    reqs = []
    for i, (instruction, answer) in enumerate(PAIRS):
        for role, text in (("cond", instruction), ("free", spec.neutral)):
            m = scoring_messages(text, answer)
            rid = request_id(model=model, stage="t", params=ad.id_params(), messages=m)
            reqs.append(LLMRequest(id=rid, messages=m, key=f"{i}|{role}"))

    async def go() -> list:
        async with LLMClient(LLMConfig(concurrency=4, request_timeout_s=300), [url], ad) as client:
            return await client.complete_all(reqs)

    by_key = {r.key: r for r in asyncio.run(go())}
    assert all(r.ok and r.completion_tokens <= 1 for r in by_key.values()), [r.error for r in by_key.values()]
    verdicts = [
        lift_verdict(by_key[f"{i}|cond"].logprobs, by_key[f"{i}|free"].logprobs, a, spec.lift_edges, (1, 5))
        for i, (_, a) in enumerate(PAIRS)
    ]
    assert all(v.score is not None for v in verdicts), verdicts
    assert verdicts[0].expected_score > verdicts[1].expected_score, verdicts
