"""The LLM layer: every generation stage (genericize, instantiate, judge) calls vLLM through here.

Public interface (small on purpose; stages need nothing else)::

    from fi_spark.llm import complete

    run = complete(
        ctx,                          # fi_spark.stages.base.StageContext (spark, config, store, output, log)
        requests_df,                  # DataFrame: `key` (string) + `messages` (JSON string of
                                      #   [{"role": "system"|"user"|"assistant", "content": str}, ...])
                                      #   or `prompt` (string, plain completion)
        stage="genericize",           # part of every request id; also the ledger partition and log name
        response_schema=MySchema,     # optional: a pydantic model class or a JSON-schema dict; the server is
                                      #   asked for JSON matching it (structured output) and answers are validated
        schema_name="template",       # optional: the name sent with the schema
        max_tokens=None,              # optional per-stage overrides of config.llm sampling settings
        temperature=None,
    )
    run.results   # DataFrame, one row per input row (same `key`s, nothing dropped):
                  #   key, request_id, content, parsed, error_reason, error, prompt_tokens, cached_tokens,
                  #   completion_tokens, latency_ms, server_ms, attempts, endpoint, cached
    run.metrics   # dict[str, float] for StageResult.metrics: requests, http_calls, cached, ok, failed,
                  #   failed.<reason>, retries.<cause>, resumed, prompt_tokens, cached_prompt_tokens,
                  #   completion_tokens, server_seconds, latency_ms_p50/p95/p99, requests_per_s, tokens_per_s

Columns of `run.results`:
- `content`: the raw text the model returned; null on error, except for content errors (`schema_invalid`,
  `not_json`, `truncated_output`), where it is kept so a person can see what the model said.
- `parsed`: with `response_schema`, the schema-valid answer as a canonical JSON string (parse it with
  `json.loads` or `from_json`); null on error or without a schema.
- `error_reason`: null when the row succeeded, else a machine-readable reason, one of
  `fi_spark.llm.types.ERROR_REASONS` (e.g. `schema_invalid`, `not_json`, `truncated_output`, `http_400`,
  `retries_exhausted`, `endpoints_unavailable`, `budget_exhausted`); `error` is the human-readable detail.
  Stages turn these rows into their rejects table (reason = f"llm_{error_reason}").
- `cached`: true when the answer came from the ledger of an earlier run (no HTTP call was made).

What `complete` guarantees:
- Each request gets a deterministic id: sha256 of (model, messages or prompt, sampling params, response
  schema, stage) -- see `request_id`. Identical requests in one frame are sent once.
- The ledger table `llm_responses` (fi_spark.schemas.LLM_RESPONSES, keyed by request_id) keeps every
  final answer. Requests already in it are never sent again: a re-run with a warm ledger makes zero HTTP
  calls. Workers journal every answer the moment it arrives (a JSON line, flushed; fsyncs batched
  `llm.journal_flush_s` apart; on s3:// one object per ~`llm.journal_flush_s` of answers), so a killed job
  re-sends at most the requests in flight (on s3://: plus the last batch); a Spark task retry skips what
  its earlier attempt journaled; the next run folds the journal into the ledger first (dedup by
  request_id), so each request is in the ledger exactly once. `requests_df` may carry a `group` column
  (e.g. the document): a group's requests are sent together to one endpoint (prefix-cache affinity).
- HTTP work runs eagerly inside `complete` (one Spark action; each partition keeps
  `config.llm.concurrency` requests in flight with asyncio), spread over `config.llm.endpoints` with
  retries (exponential backoff with full jitter, Retry-After honoured), a circuit breaker per endpoint,
  and a token budget (`config.llm.token_budget`) that stops sending cleanly; rows cut off by the budget
  or by transient failures get an error row now and are sent again by the next run.
- With `config.llm.endpoints` empty, a real local vLLM server is started once per process
  (fi_spark.llm.local_server) and stopped at exit.

Lower layers, for tests, benchmarks and notebooks (no Spark needed):
- `fi_spark.llm.client.LLMClient` -- the async client (`await client.complete_all(requests)`).
- `fi_spark.llm.types` -- `LLMRequest`, `LLMResult`, `request_id`, `ERROR_REASONS`.
- `fi_spark.llm.adapter` -- the only module that knows OpenAI/vLLM request and response shapes.
- `fi_spark.llm.testserver` -- a fault-injecting OpenAI-compatible server (tests and benchmarks only).
- `fi_spark.llm.local_server` -- install, convert the bundled model, start/stop a real vLLM CPU server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pyspark is imported only when `complete` is used, so the core stays Spark-free
    from fi_spark.llm.spark import LLMRun, complete

__all__ = ["LLMRun", "complete"]


def __getattr__(name: str) -> Any:
    if name in ("complete", "LLMRun"):
        from fi_spark.llm import spark

        return getattr(spark, name)
    raise AttributeError(name)
