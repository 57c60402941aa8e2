"""`complete`: send a DataFrame of requests through the async client, exactly once per request id.

Flow of one call (see fi_spark.llm for the interface):
1. fold journal files that a killed earlier run left behind into the ledger (fi_spark.llm.journal);
2. give each row its deterministic request id (a mapInPandas hashing the row's already-encoded canonical
   `messages` string, so messages are JSON-encoded once, by the stage, and decoded once, by the sender);
3. pending = distinct ids not in the ledger `llm_responses`, hash-partitioned by id into
   `env.partitions` tasks (`llm.partitions`, default `engine.shuffle_partitions`);
4. one Spark action: each task runs the asyncio client over its rows (`llm.concurrency` in flight),
   journals answers as it goes and returns one summary row;
5. fold this run's journal: final answers -> `llm_responses`, transient failures -> `llm_failures`;
6. results = every input row joined to its answer (ledger) or this run's failure.
The HTTP step runs eagerly inside `complete`, so the lazily evaluated results frame can be used any
number of times without sending anything again.

The token budget is split evenly over the tasks (no cross-task coordination is possible on every
engine); each task reserves worst-case tokens before sending, so the run never overshoots it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from fi_spark import storage
from fi_spark.llm.adapter import Adapter, schema_dict
from fi_spark.llm.client import LLMClient
from fi_spark.llm.config import LLMConfig
from fi_spark.llm.journal import JournalWriter, list_files, remove_run
from fi_spark.llm.policy import TokenBudget
from fi_spark.llm.types import FINAL_REASONS, LLMRequest, Sampling, request_id
from fi_spark.schemas import LLM_FAILURES, LLM_RESPONSES

if TYPE_CHECKING:
    import logging

    from pyspark.sql import SparkSession

    from fi_spark.tables import TableStore

ID_SCHEMA = StructType(
    [
        StructField("key", StringType()),
        StructField("request_id", StringType()),
        StructField("messages", StringType()),
        StructField("prompt", StringType()),
    ]
)
SUMMARY_SCHEMA = StructType(
    [StructField(n, LongType()) for n in ("requests", "http_calls", "prompt_tokens", "completion_tokens")]
    + [StructField("retries", StringType()), StructField("ms", LongType())]
)
RESULT_COLUMNS = ["request_id", "content", "parsed", "error_reason", "error", "prompt_tokens", "completion_tokens",
                  "latency_ms", "attempts", "endpoint", "run_id"]  # fmt: skip


@dataclass(frozen=True)
class LLMEnv:
    """What `complete` needs from a run, and nothing more (the llm package never sees a StageContext)."""

    spark: SparkSession
    store: TableStore  # the ledger tables llm_responses / llm_failures live here
    cfg: LLMConfig
    output: str  # the run's output root: journals go under <output>/llm_journal/<stage>
    log: logging.Logger
    partitions: int  # Spark tasks that send requests (llm.partitions, else engine.shuffle_partitions)


@dataclass
class LLMRun:
    results: DataFrame
    metrics: dict[str, float]


@dataclass(frozen=True)
class CallSpec:
    """What a Spark task needs to send one stage's requests; pickled into the mapInPandas closures."""

    cfg: LLMConfig
    model: str
    stage: str
    endpoints: tuple[str, ...]
    sampling: Sampling
    schema: dict[str, Any] | None
    schema_name: str
    run_id: str
    journal_root: str
    task_budget: int | None
    api_key: str | None = field(default=None, repr=False)  # never printed

    def adapter(self) -> Adapter:
        return Adapter(model=self.model, sampling=self.sampling, api=self.cfg.api, flavor=self.cfg.flavor,
                       response_schema=self.schema, schema_name=self.schema_name)  # fmt: skip


def complete(
    env: LLMEnv,
    requests_df: DataFrame,
    *,
    stage: str,
    response_schema: Any = None,
    schema_name: str = "answer",
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> LLMRun:
    """Answer every row of `requests_df` (key + messages JSON or prompt); see fi_spark.llm for the contract."""
    cols = set(requests_df.columns)
    if "key" not in cols or not ({"messages", "prompt"} & cols):
        raise ValueError(f"complete(): requests_df needs a `key` column and `messages` or `prompt`; has {sorted(cols)}")
    cfg = env.cfg
    endpoints, model = resolve_endpoints(cfg, env.log)
    sampling = Sampling(
        max_tokens=max_tokens or cfg.max_tokens,
        temperature=cfg.temperature if temperature is None else temperature,
        top_p=cfg.top_p,
        seed=cfg.seed,
        frequency_penalty=cfg.frequency_penalty,
    )
    tasks = env.partitions
    if not cfg.endpoints:  # one small CPU server: more in flight than its batch only queues and times out
        cfg = cfg.model_copy(update={"concurrency": min(cfg.concurrency, max(1, cfg.local.max_num_seqs // tasks))})
    spec = CallSpec(
        cfg=cfg, model=model, stage=stage, endpoints=tuple(endpoints), sampling=sampling,
        schema=schema_dict(response_schema), schema_name=schema_name,
        run_id=f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
        journal_root=storage.join(env.output, "llm_journal", stage),
        task_budget=cfg.token_budget // tasks if cfg.token_budget else None,
        api_key=os.environ.get(cfg.api_key_env) if cfg.api_key_env else None,
    )  # fmt: skip
    spec.adapter()  # a broken schema fails here, once, on the driver
    leftover = fold_journal(env, spec.journal_root)
    if leftover:
        env.log.info("llm %s: folded %d journaled answers of an interrupted run into the ledger", stage, leftover)

    for column in ("messages", "prompt"):
        if column not in cols:
            requests_df = requests_df.withColumn(column, F.lit(None).cast("string"))
    with_ids = requests_df.select(F.col("key").cast("string"), "messages", "prompt").mapInPandas(
        partial(_add_ids, spec), ID_SCHEMA
    )
    answered = env.store.read(LLM_RESPONSES).select("request_id")
    pending = (
        with_ids.dropDuplicates(["request_id"])
        .join(answered, "request_id", "left_anti")
        .repartition(tasks, "request_id")
    )
    t0 = time.monotonic()
    summaries = pending.mapInPandas(partial(_send_partition, spec), SUMMARY_SCHEMA).collect()
    seconds = time.monotonic() - t0
    fold_journal(env, spec.journal_root)

    ledger = env.store.read(LLM_RESPONSES)
    failed_now = env.store.read(LLM_FAILURES).filter(F.col("run_id") == spec.run_id)
    answers = ledger.unionByName(failed_now.join(ledger.select("request_id"), "request_id", "left_anti"))
    results = (
        with_ids.select("key", "request_id")
        .join(answers.select(*RESULT_COLUMNS), "request_id", "left")
        .withColumn(
            "error_reason", F.when(F.col("run_id").isNull(), F.lit("no_result")).otherwise(F.col("error_reason"))
        )
        .withColumn("cached", F.col("run_id") != F.lit(spec.run_id))
        .drop("run_id")
    )
    metrics = _metrics(env, results, summaries, seconds, spec.run_id)
    env.log.info("llm %s: %s", stage, ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())))
    return LLMRun(results=results, metrics=metrics)


def resolve_endpoints(cfg: LLMConfig, log: logging.Logger) -> tuple[list[str], str]:
    """(endpoint URLs, model name): the configured servers, or the local vLLM server started once per process."""
    if cfg.endpoints:
        model = cfg.model or _served_model(cfg.endpoints[0], cfg)
        return list(cfg.endpoints), model
    from fi_spark.llm.local_server import shared_server

    log.info("llm.endpoints is empty: using the local vLLM server")
    return [shared_server(cfg.local)], cfg.model or cfg.local.served_model_name


def _served_model(url: str, cfg: LLMConfig) -> str:
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        data = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=cfg.connect_timeout_s).json()
        return str(data["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"llm.model is empty and {url}/models did not name a model ({exc}); set llm.model") from exc


def fold_journal(env: LLMEnv, journal_root: str) -> int:
    """Move every journaled answer into the ledger tables (dedup by id), then delete those files."""
    runs = list_files(journal_root)
    files = [f for run_files in runs.values() for f in run_files]
    if not files:
        return 0
    journaled = env.spark.read.schema(LLM_RESPONSES.schema).parquet(*files)
    best_first = Window.partitionBy("request_id").orderBy(F.col("error_reason").isNull().desc(), "finished_at_ms")
    best = journaled.withColumn("_rank", F.row_number().over(best_first)).filter("_rank = 1").drop("_rank")
    is_final = F.col("error_reason").isNull() | F.col("error_reason").isin(*FINAL_REASONS)
    added = env.store.write(best.filter(is_final), LLM_RESPONSES)
    env.store.write(journaled.filter(~is_final).dropDuplicates(["request_id", "run_id"]), LLM_FAILURES)
    for run_id in runs:
        remove_run(journal_root, run_id)
    return added


def _add_ids(spec: CallSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Ids hash the `messages` string as given (stages send canonical_json), so nothing is decoded or re-encoded
    here; a row that is not a usable messages list is answered `bad_request` by the send step."""
    params = spec.adapter().id_params()
    for pdf in batches:
        ids = []
        for raw, prompt in zip(pdf["messages"], pdf["prompt"], strict=True):
            if isinstance(raw, str):
                rid = request_id(model=spec.model, stage=spec.stage, params=params, messages_json=raw)
            elif isinstance(prompt, str):
                rid = request_id(model=spec.model, stage=spec.stage, params=params, prompt=prompt)
            else:  # neither: a stable id, and the send step answers it with `bad_request`
                rid = request_id(model=spec.model, stage=spec.stage, params=params, prompt="\0invalid\0")
            ids.append(rid)
        yield pd.DataFrame({"key": pdf["key"], "request_id": ids, "messages": pdf["messages"], "prompt": pdf["prompt"]})


def _parse_messages(raw: str) -> list[dict[str, Any]] | None:
    """The messages list of a request row, or None when it is not JSON of [{"role": str, "content": str}, ...]."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    ok = (
        isinstance(value, list)
        and value
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
        )
    )
    return value if ok else None


def _send_partition(spec: CallSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Runs in a Spark task: one event loop, one HTTP client, one journal writer for the whole partition."""
    cfg = spec.cfg
    writer = JournalWriter(
        storage.join(spec.journal_root, spec.run_id), stage=spec.stage, model=spec.model, run_id=spec.run_id,
        flush_rows=cfg.journal_flush_rows, flush_s=cfg.journal_flush_s,
    )  # fmt: skip
    client = LLMClient(
        cfg, list(spec.endpoints), spec.adapter(), api_key=spec.api_key, budget=TokenBudget(spec.task_budget)
    )

    def requests() -> Iterator[LLMRequest]:
        for pdf in batches:
            for rid, raw, prompt in zip(pdf["request_id"], pdf["messages"], pdf["prompt"], strict=True):
                messages = _parse_messages(raw) if isinstance(raw, str) else None  # None: answered bad_request
                text = prompt if isinstance(prompt, str) and not isinstance(raw, str) else None
                yield LLMRequest(id=rid, messages=messages, prompt=text)

    count = Counter[str]()

    async def drive() -> None:
        async with client:
            async for result in client.stream(requests()):
                writer.add(result)
                count["requests"] += 1
                count["prompt_tokens"] += result.prompt_tokens
                count["completion_tokens"] += result.completion_tokens
        writer.flush()

    t0 = time.monotonic()
    asyncio.run(drive())
    yield pd.DataFrame(
        [{**{k: count[k] for k in ("requests", "prompt_tokens", "completion_tokens")}, "http_calls": client.http_calls,
          "retries": json.dumps(dict(client.retries)), "ms": int((time.monotonic() - t0) * 1000)}]
    )  # fmt: skip


def _metrics(env: LLMEnv, results: DataFrame, summaries: list[Any], seconds: float, run_id: str) -> dict[str, float]:
    m: dict[str, float] = {"rows": 0.0, "ok": 0.0, "failed": 0.0, "cached": 0.0}
    for row in results.groupBy("error_reason", "cached").count().collect():
        m["rows"] += row["count"]
        if row["cached"]:
            m["cached"] += row["count"]
        if row["error_reason"] is None:
            m["ok"] += row["count"]
        else:
            m["failed"] += row["count"]
            m[f"failed.{row['error_reason']}"] = m.get(f"failed.{row['error_reason']}", 0.0) + row["count"]
    retries: Counter[str] = Counter()
    for s in summaries:
        retries.update(json.loads(s["retries"]))
        for k in ("requests", "http_calls", "prompt_tokens", "completion_tokens"):
            m[k] = m.get(k, 0.0) + float(s[k])
    m.update({f"retries.{cause}": float(n) for cause, n in retries.items()})
    m["retries"] = float(sum(retries.values()))
    m["send_seconds"] = seconds
    if m.get("requests"):
        m["requests_per_s"] = m["requests"] / max(seconds, 1e-9)
        m["tokens_per_s"] = (m["prompt_tokens"] + m["completion_tokens"]) / max(seconds, 1e-9)
        mine = env.store.read(LLM_RESPONSES).unionByName(env.store.read(LLM_FAILURES))
        # one scalar percentile per column: Sail 0.7 has no array form of percentile_approx
        pcts = {f"latency_ms_p{p}": F.percentile_approx("latency_ms", p / 100).alias(f"p{p}") for p in (50, 95, 99)}
        found = mine.filter(F.col("run_id") == run_id).agg(*pcts.values()).first()
        if found is not None:
            m.update({name: float(v) for name, v in zip(pcts, found, strict=True) if v is not None})
    return m
