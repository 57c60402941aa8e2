"""The LLM layer: every generation stage (genericize, instantiate, judge) calls vLLM through here.

Public interface (small on purpose; stages need nothing else)::

    from fi_spark.llm import LLMEnv, complete

    run = complete(
        env,                          # LLMEnv(spark, store, cfg=LLMConfig, output, log, partitions, server);
                                      #   a stage builds it with StageContext.llm_env()
        requests_df,                  # DataFrame: `key` (string) + `messages` (string: canonical_json of
                                      #   [{"role": "system"|"user"|"assistant", "content": str}, ...],
                                      #   fi_spark.llm.types.canonical_json; encoded once, by the caller)
                                      #   or `prompt` (string, plain completion); optional `group` (string:
                                      #   rows of one group prefer one endpoint, e.g. one document's requests)
        stage="genericize",           # part of every request id; also the ledger partition and log name
        response_schema=MySchema,     # optional: a pydantic model class or a JSON-schema dict; the server is
                                      #   asked for JSON matching it (structured output) and answers are validated
        schema_name="template",       # optional: the name sent with the schema
        max_tokens=None,              # optional per-stage overrides of config.llm sampling settings
        temperature=None,
        top_logprobs=0,               # optional: return this many alternatives per generated token (`logprobs`)
    )
    run.results   # DataFrame, one row per input row (same `key`s, nothing dropped):
                  #   key, request_id, content, parsed, logprobs, error_reason, error, prompt_tokens, cached_tokens,
                  #   completion_tokens, latency_ms, server_ms, attempts, endpoint, cached
    run.model     # the model name the requests carried
    run.metrics   # dict[str, float] for StageResult.metrics: requests, http_calls, cached, ok, failed,
                  #   failed.<reason>, retries.<cause>, resumed, prompt_tokens, cached_prompt_tokens,
                  #   completion_tokens, server_seconds, latency_ms_p50/p95/p99, requests_per_s, tokens_per_s

Columns of `run.results`:
- `content`: the raw text the model returned; null on error, except for content errors (`schema_invalid`,
  `not_json`, `truncated_output`), where it is kept so a person can see what the model said.
- `parsed`: with `response_schema`, the schema-valid answer as a canonical JSON string (parse it with
  `json.loads` or `from_json`); null on error or without a schema.
- `logprobs`: with `top_logprobs` > 0 and a server that returns them, the JSON string
  `[[token, {alternative: logprob, ...}], ...]`, one entry per generated token (fi_spark.llm.adapter); else null.
- `error_reason`: null when the row succeeded, else a machine-readable reason, one of
  `fi_spark.llm.types.ERROR_REASONS` (e.g. `schema_invalid`, `not_json`, `truncated_output`, `http_400`,
  `retries_exhausted`, `endpoints_unavailable`, `budget_exhausted`); `error` is the human-readable detail.
  Stages turn these rows into their rejects table (reason = f"llm_{error_reason}").
- `cached`: true when the answer came from the ledger of an earlier run (no HTTP call was made).

What `complete` guarantees:
- Each request gets a deterministic id: sha256 of (model, messages or prompt, sampling params, response
  schema, stage) -- see `request_id`; the `messages` string is hashed as given, so send canonical_json
  (other spellings of the same messages are other requests). Identical requests in one frame are sent once.
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
- `env.cfg` is the calling stage's own settings (fi_spark.config.Config.stage_llm: `<section>.llm`, then `llm.*`).
- The servers come from `env.server` (fi_spark.serving.base.InferenceServer; `StageContext.llm_env` builds it
  with fi_spark.serving.server_for): the configured `config.llm.endpoints`, or with none the shared local vLLM
  server (fi_spark.serving.local; on a cluster or Spark Connect engine the stage refuses instead,
  fi_spark.stages.base.require_llm_servers): started if none runs, kept while any process uses it, restarted
  when dead or wedged. When rows failed with a transient server error, `server.heal()` is asked once; when it
  says the server answers again (a restarted local one), those rows are sent once more. `complete(...,
  server=srv)` uses another server for one call (a test's fault-injecting one).
- `run.model` is the model name the requests carried (`llm.model`, else the one the server lists), so a stage
  never reads the ledger to learn it.

This package is the client only: it imports nothing of the servers' supervision; it sees a server through
fi_spark.serving.base.InferenceServer alone (a Protocol that imports nothing, named for types only).

Lower layers, for tests, benchmarks and notebooks (no Spark needed):
- `fi_spark.llm.client.LLMClient` -- the async client (`await client.complete_all(requests)`).
- `fi_spark.llm.types` -- `LLMRequest`, `LLMResult`, `request_id`, `ERROR_REASONS`.
- `fi_spark.llm.adapter` -- the only module that knows OpenAI/vLLM request and response shapes.
- `fi_spark.llm.policy` (retries, breaker, endpoint choice, budget), `.task` (one Spark task's sending),
  `.journal` (the crash-safe answer journal), `.progress` (progress lines), `.config` (the `llm` section).
- Servers: `fi_spark.serving` (the interface, the configured endpoints, the local vLLM server and its
  supervision, the only `/models` and `/health` probes); the fault-injecting test server is
  `fi_spark_testkit.fault_server` (outside the wheel: tests and benchmarks only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pyspark is imported only when `complete` is used, so the core stays Spark-free
    from fi_spark.llm.spark import LLMEnv, LLMRun, complete

__all__ = ["LLMEnv", "LLMRun", "complete"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fi_spark.llm import spark

        return getattr(spark, name)
    raise AttributeError(name)
