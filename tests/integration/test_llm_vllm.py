"""Against the real local vLLM CPU server (SmolLM2-135M-Instruct): structured output comes back schema-valid.

Marked `llm`: the first run on a fresh machine installs vLLM into its own venv and converts the model
(minutes, once; see fi_spark.serving.local); after that the module takes well under a minute.
Deselect with `-m "not llm"`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import jsonschema
import pytest

from fi_spark.config import Config, EngineConfig, LLMConfig, LocalLLMServerConfig
from fi_spark.engine import Engine
from fi_spark.llm import complete
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.types import LLMRequest, Sampling, request_id
from fi_spark.serving.local import shared_server
from fi_spark.stages.base import StageContext
from fi_spark.tables import TableStore

pytestmark = pytest.mark.llm

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 40}, "country": {"type": "string", "maxLength": 40}},
    "required": ["city", "country"],
}
QUESTIONS = ["Name a large city in France.", "Name a large city in Japan.", "Name a large city in Brazil."]


@pytest.fixture(scope="module")
def vllm() -> tuple[str, str]:
    """The shared local server: started once per test process (stopped at exit), reused by later modules."""
    cfg = LocalLLMServerConfig()
    return shared_server(cfg), cfg.served_model_name


def _messages(q: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Answer with a JSON object with the keys city and country."},
        {"role": "user", "content": q},
    ]


def test_client_gets_schema_valid_json(vllm: tuple[str, str]) -> None:
    """Chat requests with response_format json_schema return parsed, schema-valid answers and token counts."""
    url, model = vllm
    ad = Adapter(model=model, sampling=Sampling(max_tokens=48, seed=0), response_schema=SCHEMA)
    reqs = []
    for q in QUESTIONS:
        m = _messages(q)
        reqs.append(LLMRequest(id=request_id(model=model, stage="t", params=ad.id_params(), messages=m), messages=m))

    async def go() -> list:
        async with LLMClient(LLMConfig(concurrency=4), [url], ad) as client:
            return await client.complete_all(reqs)

    results = asyncio.run(go())
    assert all(r.ok for r in results), [(r.error_reason, r.error, r.content) for r in results]
    for r in results:
        jsonschema.validate(json.loads(r.parsed), SCHEMA)
        assert r.prompt_tokens > 10 and r.completion_tokens > 3 and r.finish_reason == "stop"


def test_completions_api_with_vllm_structured_outputs(vllm: tuple[str, str]) -> None:
    """The completions API gets schema-valid JSON through vLLM's `structured_outputs` field."""
    url, model = vllm
    ad = Adapter(model=model, sampling=Sampling(max_tokens=48), api="completions", response_schema=SCHEMA)
    req = LLMRequest(id="c1", prompt="A famous city and its country, as JSON:\n")

    async def go() -> list:
        async with LLMClient(LLMConfig(), [url], ad) as client:
            return await client.complete_all([req])

    (result,) = asyncio.run(go())
    assert result.ok, (result.error_reason, result.error, result.content)
    jsonschema.validate(json.loads(result.parsed), SCHEMA)


def test_spark_job_against_real_server(embedded_engine: Engine, tmp_path: Path, vllm: tuple[str, str]) -> None:
    """`complete` on Spark gets parsed, schema-valid answers from vLLM; a re-run is served by the ledger."""
    url, model = vllm
    cfg = Config(engine=EngineConfig(shuffle_partitions=2), llm=LLMConfig(endpoints=[url], model=model, max_tokens=48))
    spark = embedded_engine.spark
    ctx = StageContext.for_store(
        embedded_engine, cfg, TableStore(spark, str(tmp_path), "delta"), log=logging.getLogger("t")
    )
    df = spark.createDataFrame(
        [(f"q{i}", json.dumps(_messages(q))) for i, q in enumerate(QUESTIONS)], "key string, messages string"
    )
    run = complete(ctx.llm_env(), df, stage="vllm", response_schema=SCHEMA)
    rows = run.results.collect()
    assert len(rows) == 3 and all(r["error_reason"] is None for r in rows), [r.asDict() for r in rows]
    for r in rows:
        jsonschema.validate(json.loads(r["parsed"]), SCHEMA)
    assert run.metrics["completion_tokens"] > 0 and run.metrics["http_calls"] >= 3
    again = complete(ctx.llm_env(), df, stage="vllm", response_schema=SCHEMA)
    assert again.metrics["http_calls"] == 0 and again.metrics["cached"] == 3
