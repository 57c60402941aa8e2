"""`complete`: send a DataFrame of requests through the async client, exactly once per request id.

Flow of one call (see fi_spark.llm for the interface):
1. fold journal files that a killed earlier run left behind into the ledger (fi_spark.llm.journal);
2. give each row its deterministic request id (a mapInPandas hashing the row's already-encoded canonical
   `messages` string, so messages are JSON-encoded once, by the stage, and decoded once, by the sender);
3. pending = distinct ids not in the ledger `llm_responses`, hash-partitioned into `env.partitions` tasks
   (`llm.partitions`, default `engine.shuffle_partitions`) -- by `group` when requests_df has that column (sorted
   by group inside each task, so one group's requests are sent together to one endpoint), else by id.
   Sail drops a sort that feeds mapInPandas, so with groups each task sorts its own partition in
   memory: raise `llm.partitions` if one partition of requests does not fit a worker;
4. one Spark action (a driver thread logs progress from the journal meanwhile, fi_spark.llm.progress):
   each task (fi_spark.llm.task) runs the asyncio client over its rows (`llm.concurrency` in flight),
   journals every answer the moment it arrives and returns one summary row. A task first reads what
   earlier attempts of the same partition journaled in this run and skips those requests, so a Spark
   task retry does not pay twice;
5. fold this run's journal: final answers -> `llm_responses`, transient failures -> `llm_failures`;
   rows that failed with a transient server error make it ask the server to heal (`InferenceServer.heal`,
   fi_spark.serving): when it says the server answers again (a restarted local one), they are sent once more;
6. results = every input row joined to its answer (ledger) or this run's failure.
The HTTP step runs eagerly inside `complete`, so the lazily evaluated results frame can be used any
number of times without sending anything again.

The token budget is split evenly over the tasks (no cross-task coordination is possible on every
engine); each task reserves worst-case tokens before sending, so the run never overshoots it.

Cost metrics (`prompt_tokens`, `cached_prompt_tokens`, `completion_tokens`, `server_seconds`) are sums
over the rows this call journaled (answers and transient failures), so an answer that a retried Spark
task had already paid for is counted once, and answers from the ledger of earlier runs not at all.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from fi_spark import storage
from fi_spark.config.llm import LLMConfig
from fi_spark.llm.adapter import schema_dict
from fi_spark.llm.journal import list_files, remove_run
from fi_spark.llm.progress import ProgressLog
from fi_spark.llm.task import ID_SCHEMA, SUMMARY_SCHEMA, CallSpec, add_ids, send_partition
from fi_spark.llm.types import FINAL_REASONS, Sampling
from fi_spark.redact import redact_url
from fi_spark.schemas import LLM_FAILURES, LLM_RESPONSES

if TYPE_CHECKING:
    import logging

    from pyspark.sql import SparkSession

    from fi_spark.serving.base import InferenceServer
    from fi_spark.tables import TableStore

RESULT_COLUMNS = ["request_id", "content", "parsed", "logprobs", "error_reason", "error", "prompt_tokens",
                  "cached_tokens", "completion_tokens", "latency_ms", "server_ms", "attempts", "endpoint",
                  "run_id"]  # fmt: skip


@dataclass(frozen=True)
class LLMEnv:
    """What `complete` needs from a run, and nothing more (the llm package never sees a StageContext)."""

    spark: SparkSession
    store: TableStore  # the ledger tables llm_responses / llm_failures live here
    cfg: LLMConfig
    output: str  # the run's output root: journals go under <output>/llm_journal/<stage>
    log: logging.Logger
    partitions: int  # Spark tasks that send requests (llm.partitions, else engine.shuffle_partitions)
    server: InferenceServer  # where requests go and what heals it (fi_spark.serving.server_for, or a test's)


@dataclass
class LLMRun:
    results: DataFrame
    metrics: dict[str, float]
    model: str = ""  # the model name the requests carried (the server's, when llm.model is empty)
    endpoints: tuple[str, ...] = ()  # where the requests went (the local server's URL when none is configured)
    failure: str | None = None  # one transient failure of this call, `endpoint: error`, for the stage's message


def complete(
    env: LLMEnv,
    requests_df: DataFrame,
    *,
    stage: str,
    response_schema: Any = None,
    schema_name: str = "answer",
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_logprobs: int = 0,
    score_final_message: bool = False,
    server: InferenceServer | None = None,
) -> LLMRun:
    """Answer every row of `requests_df` (key + messages JSON or prompt); see fi_spark.llm for the contract.
    `server` replaces `env.server` for this call (a test's fault-injecting server)."""
    cols = set(requests_df.columns)
    if "key" not in cols or not ({"messages", "prompt"} & cols):
        raise ValueError(f"complete(): requests_df needs a `key` column and `messages` or `prompt`; has {sorted(cols)}")
    cfg = env.cfg
    server = server or env.server
    endpoints, model = server.endpoints(), server.model
    sampling = Sampling(
        max_tokens=max_tokens or cfg.max_tokens,
        temperature=cfg.temperature if temperature is None else temperature,
        top_p=cfg.top_p,
        seed=cfg.seed,
        frequency_penalty=cfg.frequency_penalty,
        top_logprobs=top_logprobs,
        score_final_message=score_final_message,
    )
    tasks = env.partitions
    if server.capacity:  # one small server: more in flight than its batch only queues and times out
        cfg = cfg.model_copy(update={"concurrency": min(cfg.concurrency, max(1, server.capacity // tasks))})
    spec = CallSpec(
        cfg=cfg, model=model, stage=stage, endpoints=tuple(endpoints), sampling=sampling,
        schema=schema_dict(response_schema), schema_name=schema_name,
        run_id=f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
        journal_root=storage.join(env.output, "llm_journal", stage),
        task_budget=cfg.token_budget // tasks if cfg.token_budget else None, grouped="group" in cols,
        api_key=os.environ.get(cfg.api_key_env) if cfg.api_key_env else None,
    )  # fmt: skip
    spec.adapter()  # a broken schema fails here, once, on the driver
    leftover = fold_journal(env, spec.journal_root)
    if leftover:
        env.log.info("llm %s: folded %d journaled answers of an interrupted run into the ledger", stage, leftover)

    for column in ("messages", "prompt", "group"):
        if column not in cols:
            requests_df = requests_df.withColumn(column, F.lit(None).cast("string"))
    with_ids = requests_df.select(
        F.col("key").cast("string"), "messages", "prompt", F.col("group").cast("string")
    ).mapInPandas(partial(add_ids, spec), ID_SCHEMA)
    answered = env.store.read(LLM_RESPONSES).select("request_id")
    route = F.coalesce(F.col("group"), F.col("request_id"))  # rows without a group spread by id
    pending = (
        with_ids.dropDuplicates(["request_id"])
        .join(answered, "request_id", "left_anti")
        .repartition(tasks, route)
        .sortWithinPartitions(route, "request_id")
        .withColumn("_partition", F.spark_partition_id())  # names the task's journal folder, for its retries
    )
    total = pending.count() if cfg.progress_s > 0 else 0  # one more action, for the progress lines' total / ETA
    if total:
        env.log.info("llm %s: sending %d requests to %s", stage, total, ", ".join(map(redact_url, endpoints)))
    t0 = time.monotonic()
    run_dir = storage.join(spec.journal_root, spec.run_id)
    with ProgressLog(stage, run_dir, total, cfg.progress_s, env.log):  # a line every llm.progress_s
        summaries = pending.mapInPandas(partial(send_partition, spec), SUMMARY_SCHEMA).collect()
    fold_journal(env, spec.journal_root)
    results, metrics = _results(env, spec, with_ids, summaries, time.monotonic() - t0)
    if metrics.get("failed.retries_exhausted") or metrics.get("failed.endpoints_unavailable"):
        resent = _heal_and_resend(env, server, spec, with_ids, tasks)  # a restarted server: failed rows once more
        if resent:
            summaries += resent
            results, metrics = _results(env, spec, with_ids, summaries, time.monotonic() - t0)
    env.log.info("llm %s: %s", stage, ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items())))
    failure = None
    if metrics.get("failed"):  # one example for the stage's failure message (fi_spark.stages.llm_stage)
        failed_now = env.store.read(LLM_FAILURES).filter(F.col("run_id") == spec.run_id)
        first = failed_now.where(F.col("error").isNotNull()).select("endpoint", "error").first()
        failure = f"{first['endpoint'] or '?'}: {first['error']}" if first is not None else None
    return LLMRun(results=results, metrics=metrics, model=model, endpoints=tuple(endpoints), failure=failure)


def _results(
    env: LLMEnv, spec: CallSpec, with_ids: DataFrame, summaries: list[Any], seconds: float
) -> tuple[DataFrame, dict[str, float]]:
    """Every input row joined to its answer (ledger) or this call's failure, and the call's metrics."""
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
    return results, _metrics(env, results, summaries, seconds, spec.run_id)


def _heal_and_resend(
    env: LLMEnv, server: InferenceServer, spec: CallSpec, with_ids: DataFrame, tasks: int
) -> list[Any]:
    """Rows of this call that failed with a transient server error are sent once more when `server.heal`
    says so (the local server restarted, or found answering; a remote server never asks for it)."""
    failed = env.store.read(LLM_FAILURES).filter(
        (F.col("run_id") == spec.run_id) & F.col("error_reason").isin("retries_exhausted", "endpoints_unavailable")
    )
    n = failed.count()
    if not n or not server.heal(f"{spec.stage}: {n} requests failed", env.log):
        return []
    env.log.info("llm %s: sending the %d failed requests once more", spec.stage, n)
    retry = with_ids.dropDuplicates(["request_id"]).join(failed.select("request_id"), "request_id", "left_semi")
    route = F.coalesce(F.col("group"), F.col("request_id"))
    retry = retry.repartition(tasks, route).withColumn("_partition", F.spark_partition_id() + F.lit(tasks))
    out = retry.mapInPandas(partial(send_partition, spec), SUMMARY_SCHEMA).collect()
    fold_journal(env, spec.journal_root)
    return out


def fold_journal(env: LLMEnv, journal_root: str) -> int:
    """Move every journaled answer into the ledger tables (dedup by id), then delete those files."""
    runs = list_files(journal_root)
    files = [f for run_files in runs.values() for f in run_files]
    if not files:
        return 0
    journaled = read_journal(env, files)
    best_first = Window.partitionBy("request_id").orderBy(F.col("error_reason").isNull().desc(), "finished_at_ms")
    best = journaled.withColumn("_rank", F.row_number().over(best_first)).filter("_rank = 1").drop("_rank")
    is_final = F.col("error_reason").isNull() | F.col("error_reason").isin(*FINAL_REASONS)
    added = env.store.write(best.filter(is_final), LLM_RESPONSES)
    env.store.write(journaled.filter(~is_final).dropDuplicates(["request_id", "run_id"]), LLM_FAILURES)
    for run_id in runs:
        remove_run(journal_root, run_id)
    return added


def read_journal(env: LLMEnv, files: list[str]) -> DataFrame:
    """Journal files as ledger rows: JSON lines (a torn last line of a killed task parses to null and is
    dropped), plus Parquet files an older fi-spark wrote (columns it lacked become null)."""
    # every field nullable: Sail rejects a null (torn line) in a non-nullable struct field
    schema = StructType([StructField(f.name, f.dataType, True) for f in LLM_RESPONSES.schema.fields])
    frames = []
    lines = [f for f in files if f.endswith(".jsonl")]
    if lines:
        parsed = env.spark.read.text(lines).select(F.from_json("value", schema).alias("r")).select("r.*")
        frames.append(parsed)
    old = [f for f in files if f.endswith(".parquet")]
    if old:
        table = env.spark.read.parquet(*old)
        frames.append(
            table.select(
                *[
                    (F.col(f.name) if f.name in table.columns else F.lit(None)).cast(f.dataType).alias(f.name)
                    for f in schema.fields
                ]
            )
        )
    out = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    return out.filter(
        F.col("request_id").isNotNull() & F.col("run_id").isNotNull() & F.col("finished_at_ms").isNotNull()
    )


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
    m.update({"requests": 0.0, "http_calls": 0.0, "resumed": 0.0})
    retries: Counter[str] = Counter()
    for s in summaries:
        retries.update(json.loads(s["retries"]))
        for k in ("requests", "http_calls", "resumed"):
            m[k] = m.get(k, 0.0) + float(s[k])
    m.update({f"retries.{cause}": float(n) for cause, n in retries.items()})
    m["retries"] = float(sum(retries.values()))
    m["send_seconds"] = seconds
    costs = {"prompt_tokens": "prompt_tokens", "cached_prompt_tokens": "cached_tokens",
             "completion_tokens": "completion_tokens", "server_seconds": "server_ms"}  # fmt: skip
    m.update(dict.fromkeys(costs, 0.0))
    if m.get("requests") or m.get("resumed"):
        mine = env.store.read(LLM_RESPONSES).unionByName(env.store.read(LLM_FAILURES)).filter(F.col("run_id") == run_id)
        sums = [F.sum(column).alias(name) for name, column in costs.items()]
        # one scalar percentile per column: Sail 0.7 has no array form of percentile_approx
        pcts = {f"latency_ms_p{p}": F.percentile_approx("latency_ms", p / 100).alias(f"p{p}") for p in (50, 95, 99)}
        found = mine.agg(*sums, *pcts.values()).first()
        if found is not None:
            names = [*costs, *pcts]
            m.update({name: float(v) for name, v in zip(names, found, strict=True) if v is not None})
            m["server_seconds"] /= 1000.0
    if m.get("requests"):
        m["requests_per_s"] = m["requests"] / max(seconds, 1e-9)
        m["tokens_per_s"] = (m["prompt_tokens"] + m["completion_tokens"]) / max(seconds, 1e-9)
    return m
