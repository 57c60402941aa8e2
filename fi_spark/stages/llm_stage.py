"""The loop the three LLM stages share (genericize, instantiate, judge), DataTrove-style: the base owns it.

    pending rows (not yet in the output or reject tables: an anti-join on their key)
      -> build requests (key, messages as canonical JSON, encoded once; optional group)
      -> fi_spark.llm.complete (ledger-backed: answered requests are never sent again)
      -> check each answer on the workers (`checker`: one plain function of one row -> output columns)
      -> decide (DataFrame: every output / reject column plus `reason`; null = accepted)
      -> write accepted rows and stored rejects -> StageResult with the counts checked

A subclass sets `name`, `key`, `tables`, `checked` and implements `setup`, `pending`, `requests`,
`checker`, `decide` (and overrides `teardown`, `send`, `write` or `finish` where it differs); `run` is
setup -> loop -> teardown. Every pending row ends
in exactly one place: accepted, a stored reject, or -- for transient LLM failures only (`NOT_STORED`) --
a count in this run's result (`llm_<reason>`) with nothing stored, so the next run sends it again.
An LLM failure is a row like any other: a stage whose every request failed, or that had nothing to
send, still writes what it can and its StageResult adds up. But a run whose rows failed for an endpoint
reason (more than `llm.max_failed_share` of them: all of them, against a dead server) is not a success: after
the writes the stage raises LLMFailureError, one line naming the endpoint and what to check, with the result
attached for tracking (fi_spark.run.session), and the CLI exits 3.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from fi_spark.errors import LLMFailureError
from fi_spark.llm.types import TRANSIENT_REASONS, canonical_json
from fi_spark.redact import redact_url
from fi_spark.schemas import LLM_FAILURES, LLM_RESPONSES, TableSpec
from fi_spark.stages.base import StageContext, StageResult, StageTables

LLM_TABLES = (LLM_RESPONSES, LLM_FAILURES)  # every LLM stage writes the ledger through `complete`
NOT_STORED = tuple(f"llm_{r}" for r in (*TRANSIENT_REASONS, "no_result"))  # reasons the next run retries
RESULTS_DDL = (
    "key string, request_id string, content string, parsed string, logprobs string, error_reason string, error string"
)
ANSWER_COLUMNS = ("parsed", "content", "llm_reason", "error", "logprobs")  # a checker sees these, `key`, extras
# transient reasons that mean the endpoint failed (budget_exhausted is the user's own cap, not a failure)
ENDPOINT_FAILURES = tuple(r for r in NOT_STORED if r != "llm_budget_exhausted")

Row = dict[str, Any]


def encode(messages: list[dict[str, str]]) -> str:
    """Messages as the canonical JSON string `complete` hashes and sends: the one encoding of a request."""
    return canonical_json(messages)


def llm_failure(row: Row, column: str = "reason") -> Row | None:
    """The reject of a row whose LLM call failed (`llm_<reason>` + the error), or None when it has an answer."""
    if row["llm_reason"] is None:
        return None
    return {column: f"llm_{row['llm_reason']}", "detail": row["error"]}


class LLMStage:
    name: str
    key: str  # the pending rows' id column; also the requests' `key`
    tables: StageTables  # writes[0]: accepted rows; `rejects`: stored rejects
    rejects: TableSpec | None = None
    checked: StructType  # what `checker` returns per row (with `key`; absent fields are null)
    check_columns: tuple[str, ...] = ()  # pending columns the checker reads besides ANSWER_COLUMNS

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.llm_metrics: dict[str, float] = {}
        self.env = ctx.llm_env(self.name)  # this stage's own servers and model (Config.stage_llm); a cluster
        self.llm = self.env.cfg  # with none stops here, before anything is read or started
        self.llm_endpoints: list[str] = []  # where `complete` sent, and one failure, for the failure message
        self.llm_failure: str | None = None
        self.llm_model: str | None = None  # the model `complete` sent to (LLMRun.model)

    # ---- the hooks
    def setup(self) -> None:
        """Load and check the prompt and settings (driver, once per run, before any table is read)."""

    def teardown(self) -> None:
        """Release what `setup` took (driver, after the run, also when it failed). Default: nothing."""

    def pending(self) -> DataFrame:
        """Rows to decide, keyed by `key`; without request_id / model / answer columns (the answers bring them)."""
        raise NotImplementedError

    def requests(self, pending: DataFrame) -> DataFrame:
        raise NotImplementedError

    def send(self, requests: DataFrame) -> DataFrame | None:
        """`complete` the requests; None when nothing was sent. Default: one call with `call_options`."""
        return self.complete(requests, **self.call_options())

    def call_options(self) -> dict[str, Any]:
        return {}

    def checker(self) -> Callable[[Row], Row]:
        """A picklable function of one answered row (key, ANSWER_COLUMNS, check_columns) -> `checked` fields."""
        raise NotImplementedError

    def decide(self, rows: DataFrame) -> DataFrame:
        """pending + answer + checked columns -> the output / reject columns and `reason` (null = accepted)."""
        raise NotImplementedError

    def write(self, decided: DataFrame) -> dict[str, int]:
        out, *_ = self.tables.writes
        added = {out.name: self.ctx.store.write(decided.where(F.col("reason").isNull()), out)}
        if self.rejects is not None:
            stored = decided.where(F.col("reason").isNotNull() & ~F.col("transient"))
            added[self.rejects.name] = self.ctx.store.write(stored, self.rejects)
        return added

    def finish(self, result: StageResult, decided: DataFrame) -> None:
        """Add stage-specific metrics to the result."""

    # ---- the loop
    def run(self) -> StageResult:
        """setup -> the loop -> teardown (NeMo Curator's stage lifecycle; teardown also after a failure)."""
        self.setup()
        try:
            return self._loop()
        finally:
            self.teardown()

    def _loop(self) -> StageResult:
        started = time.monotonic()
        pending = self.pending()
        rows_in = pending.count()
        if rows_in == 0:
            self.ctx.log.info("%s: every row already has an output or a stored reject", self.name)
            return StageResult(self.name, 0, 0, seconds=time.monotonic() - started)
        results = self.send(self.requests(pending))
        if results is None:  # nothing could be sent: every row is decided by its checker alone
            results = self.ctx.spark.createDataFrame([], RESULTS_DDL)
        decided = self.decide(self.answered(pending, results))
        decided = decided.withColumn("transient", F.coalesce(F.col("reason").isin(*NOT_STORED), F.lit(False)))
        decided = self.ctx.store.materialize(decided, f"{self.name}/decided")  # read by the writes and counts
        added = self.write(decided)
        counts: dict[str | None, int] = {}
        models: dict[str, int] = {}  # the model of each stored row (one action with the reasons: no extra pass)
        for r in decided.groupBy("reason", "transient", "model").count().collect():
            counts[r["reason"]] = counts.get(r["reason"], 0) + int(r["count"])
            if r["model"] is not None and not r["transient"]:
                models[r["model"]] = models.get(r["model"], 0) + int(r["count"])
        rows_out = counts.pop(None, 0)
        rejected = {str(k): v for k, v in counts.items()}
        metrics = {f"llm.{k}": v for k, v in self.llm_metrics.items()}
        result = StageResult(self.name, rows_in, rows_out, rejected, metrics, tables=added, models=models)
        self.finish(result, decided)
        result.seconds = time.monotonic() - started
        result.check_accounting()
        message = failure_message(
            result.stage, result.rejected, rows_in, self.llm.max_failed_share, self.llm_endpoints,
            self.llm_failure,
        )  # fmt: skip
        if message:
            raise LLMFailureError(message, result)
        return result

    def complete(self, requests: DataFrame, **options: Any) -> DataFrame:
        """One `complete` call; its metrics are added to this run's (counts summed, latency/rates the max)."""
        from fi_spark.llm import complete

        run = complete(self.env, requests, stage=self.name, **options)
        self.llm_endpoints += [e for e in run.endpoints if e not in self.llm_endpoints]
        self.llm_failure = self.llm_failure or run.failure
        self.llm_model = run.model
        for key, value in run.metrics.items():
            peak = key.startswith("latency") or key.endswith("_per_s")
            old = self.llm_metrics.get(key)
            self.llm_metrics[key] = value if old is None else max(old, value) if peak else old + value
        return run.results

    def answered(self, pending: DataFrame, results: DataFrame) -> DataFrame:
        """Every pending row with its answer, the answering model (null where no request was sent) and the
        checker's columns."""
        model = F.lit(self.llm_model).cast("string")
        answers = results.select(
            F.col("key").alias(self.key), "request_id", "parsed", "content", "logprobs",
            F.col("error_reason").alias("llm_reason"), "error",
            F.when(F.col("request_id").isNotNull(), model).alias("model"),
        )  # fmt: skip
        rows = pending.join(answers, self.key, "left")
        checks = rows.select(self.key, *ANSWER_COLUMNS, *self.check_columns).mapInArrow(
            partial(_check_batches, self.checker(), self.key, to_arrow_schema(self.checked)), self.checked
        )
        return rows.drop(*ANSWER_COLUMNS[:2], "logprobs").join(checks, self.key)

    def sample(self, pending: DataFrame, candidates: DataFrame, n: int | None) -> DataFrame:
        """A fixed sample of all `candidates` keys (by hash), so a re-run has nothing new to send. Call it last:
        the scratch copy of an empty sample comes back without columns (the loop stops at zero rows)."""
        if not n:
            return pending
        keys = candidates.select(self.key).orderBy(F.sha2(self.key, 256)).limit(n)
        return self.ctx.store.materialize(pending.join(keys, self.key, "left_semi"), f"{self.name}/pending")


def failure_message(
    stage: str,
    rejected: dict[str, int],
    rows_in: int,
    max_share: float,
    endpoints: list[str],
    example: str | None,
) -> str | None:
    """One sentence when more than `max_share` of the stage's rows failed for an endpoint reason, else None."""
    failed = {r: n for r, n in sorted(rejected.items()) if r in ENDPOINT_FAILURES and n}
    total = sum(failed.values())
    if not total or total <= max_share * rows_in:
        return None
    where = ", ".join(redact_url(e) for e in endpoints) or "the LLM endpoint"
    share = f"all {total}" if total == rows_in else f"{total} of {rows_in}"
    reasons = ", ".join(f"{r}={n}" for r, n in failed.items())
    cause = f" (e.g. {redact_url(example)[:200]})" if example else ""
    return (
        f"{stage}: {share} rows failed at {where} ({reasons}){cause}, over llm.max_failed_share={max_share:g}; "
        "check that the server is up and reachable from the workers and not overloaded (llm.endpoints, "
        "llm.concurrency, llm.request_timeout_s); what was answered is stored and the same command sends only "
        "the failed rows again"
    )


def _check_batches(
    check: Callable[[Row], Row], key: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Runs in a Spark task. Arrow in, Arrow out with the declared schema: nulls stay nulls whatever the batch
    holds (a pandas frame with an all-None column made Sail fail with `Expected Array, got ChunkedArray`)."""
    for batch in batches:
        rows = [{**check(row), key: row[key]} for row in batch.to_pylist()]
        yield pa.RecordBatch.from_pylist(rows, schema=schema)
