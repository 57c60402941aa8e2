"""What runs inside a Spark task for fi_spark.llm.spark.complete: request ids (`add_ids`) and sending one
partition's requests through the async client while journaling every answer (`send_partition`).

Both are mapInPandas functions with the call's `CallSpec` bound by functools.partial, so this module must
stay importable on a worker: no driver state, no SparkSession.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pyspark.sql.types import LongType, StringType, StructField, StructType

from fi_spark import storage
from fi_spark.config.llm import LLMConfig
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.journal import JournalWriter, answered_ids
from fi_spark.llm.policy import TokenBudget
from fi_spark.llm.types import LLMRequest, Sampling, request_id

ID_SCHEMA = StructType(
    [
        StructField("key", StringType()),
        StructField("request_id", StringType()),
        StructField("messages", StringType()),
        StructField("prompt", StringType()),
        StructField("group", StringType()),
    ]
)
SUMMARY_SCHEMA = StructType(
    [StructField(n, LongType()) for n in ("requests", "http_calls", "resumed")]
    + [StructField("retries", StringType()), StructField("ms", LongType())]
)
TICK_S = 0.25  # how often a task checks whether its journal is due for an fsync / object write


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
    grouped: bool = False  # requests_df has a `group` column
    api_key: str | None = field(default=None, repr=False)  # never printed

    def adapter(self) -> Adapter:
        return Adapter(model=self.model, sampling=self.sampling, api=self.cfg.api, flavor=self.cfg.flavor,
                       response_schema=self.schema, schema_name=self.schema_name)  # fmt: skip


def add_ids(spec: CallSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Ids hash the `messages` string as given (stages send canonical_json), so nothing is decoded or re-encoded
    here; a row that is not a usable messages list is answered `bad_request` by the send step."""
    params = spec.adapter().id_params()
    for pdf in batches:
        groups = [g if isinstance(g, str) else None for g in pdf["group"]]
        ids = []
        for raw, prompt in zip(pdf["messages"], pdf["prompt"], strict=True):
            if isinstance(raw, str):
                rid = request_id(model=spec.model, stage=spec.stage, params=params, messages_json=raw)
            elif isinstance(prompt, str):
                rid = request_id(model=spec.model, stage=spec.stage, params=params, prompt=prompt)
            else:  # neither: a stable id, and the send step answers it with `bad_request`
                rid = request_id(model=spec.model, stage=spec.stage, params=params, prompt="\0invalid\0")
            ids.append(rid)
        yield pd.DataFrame(
            {
                "key": pdf["key"],
                "request_id": ids,
                "messages": pdf["messages"],
                "prompt": pdf["prompt"],
                "group": groups,
            }
        )


def parse_messages(raw: str) -> list[dict[str, Any]] | None:
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


def send_partition(spec: CallSpec, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Runs in a Spark task: one event loop, one HTTP client, one journal writer for the whole partition."""
    cfg = spec.cfg
    first = next(batches, None)
    while first is not None and first.empty:
        first = next(batches, None)
    if first is None:
        return
    partition = int(first["_partition"].iloc[0])
    run_dir = storage.join(spec.journal_root, spec.run_id)
    done = answered_ids(run_dir, partition)  # journaled by an earlier attempt of this task (a Spark retry)
    writer = JournalWriter(
        run_dir, stage=spec.stage, model=spec.model, run_id=spec.run_id, partition=partition,
        fsync_s=cfg.journal_flush_s, batch_rows=cfg.journal_flush_rows,
    )  # fmt: skip
    client = LLMClient(
        cfg, list(spec.endpoints), spec.adapter(), api_key=spec.api_key, budget=TokenBudget(spec.task_budget),
        on_result=writer.add,
    )  # fmt: skip
    count = Counter[str]()

    frames: Iterator[pd.DataFrame] = itertools.chain([first], batches)
    if spec.grouped:  # Sail drops a sort that feeds mapInPandas: order the partition here (memory: one partition)
        whole = pd.concat(list(frames), ignore_index=True)
        whole["_route"] = whole["group"].where(whole["group"].notna(), whole["request_id"])
        frames = iter([whole.sort_values(["_route", "request_id"], kind="stable")])

    def requests() -> Iterator[LLMRequest]:
        for pdf in frames:
            cols = (pdf["request_id"], pdf["messages"], pdf["prompt"], pdf["group"])
            for rid, raw, prompt, group in zip(*cols, strict=True):
                if rid in done:
                    count["resumed"] += 1
                    continue
                messages = parse_messages(raw) if isinstance(raw, str) else None  # None: answered bad_request
                yield LLMRequest(
                    id=rid,
                    messages=messages,
                    prompt=prompt if isinstance(prompt, str) and not isinstance(raw, str) else None,
                    group=group if isinstance(group, str) else None,
                )

    async def tick() -> None:  # durability must not wait for the next answer (the old journal's gap)
        while True:
            await asyncio.sleep(TICK_S)
            writer.tick()

    async def drive() -> None:
        ticker = asyncio.ensure_future(tick())
        try:
            async with client:
                async for _ in client.stream(requests()):
                    count["requests"] += 1
        finally:
            ticker.cancel()
            writer.close()

    t0 = time.monotonic()
    asyncio.run(drive())
    yield pd.DataFrame(
        [{"requests": count["requests"], "http_calls": client.http_calls, "resumed": count["resumed"],
          "retries": json.dumps(dict(client.retries)), "ms": int((time.monotonic() - t0) * 1000)}]
    )  # fmt: skip
