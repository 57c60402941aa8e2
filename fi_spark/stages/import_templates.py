"""Stage `import_templates`: a pre-built template bank (JSONL / Parquet) -> `templates`, `template_rejects`.

Lets users skip genericizing by loading a bank such as the released FineTemplates: each row needs a
template text (`templates.bank_template_column`, with `<fi>` slots) and a compatible document
description (`templates.bank_description_column`). Rows are validated and near-duplicates merged
with exactly the rules genericize uses (fi_spark.stages.template_rows); there is no source query, so
the leftover-specifics check does not apply. A bank row's key is a hash of the raw row, so importing
the same bank twice adds nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from functools import partial

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.config import TemplatesConfig
from fi_spark.engine import Capabilities
from fi_spark.ingest.documents import list_input_files, read_documents
from fi_spark.schemas import TEMPLATE_REJECTS, TEMPLATES
from fi_spark.stages.base import StageContext, StageResult, StageTables
from fi_spark.stages.template_rows import check_templates, merge_templates, slot_histogram
from fi_spark.text.normalize import text_hash

STAGE = "import_templates"
TABLES = StageTables(writes=(TEMPLATES, TEMPLATE_REJECTS))  # its funnel step is genericize's: templates kept
ROW_DDL = "source_key string, template string, description string, reason string, detail string, origin string"


def run(ctx: StageContext, bank: str | None = None) -> StageResult:
    """Import the bank at `bank` (default: templates.bank); a no-op when neither names one."""
    started = time.monotonic()
    cfg = ctx.config.templates
    paths = [bank] if bank else list(cfg.bank)
    if not paths:  # the pipeline runs this stage always; without a bank there is nothing to import
        ctx.log.info("%s: no template bank configured (templates.bank); nothing to import", STAGE)
        return StageResult(STAGE, 0, 0, seconds=time.monotonic() - started)
    raw = read_bank(ctx.spark, paths, ctx.engine.caps)
    rows = raw.mapInPandas(partial(_parse_rows, cfg), ROW_DDL).withColumn("query", F.lit(None).cast("string"))
    rows = rows.withColumn("query_id", F.lit(None).cast("string")).withColumn("model", F.lit(None).cast("string"))
    checked = ctx.store.materialize(check_templates(rows.withColumn("request_id", F.lit(None).cast("string")), cfg),
                                    f"{STAGE}/checked")  # fmt: skip
    valid = checked.where(F.col("reason").isNull())
    rejects = checked.where(F.col("reason").isNotNull()).dropDuplicates(["source_key"])  # identical raw rows
    added = {
        TEMPLATES.name: ctx.store.write(merge_templates(valid), TEMPLATES),
        TEMPLATE_REJECTS.name: ctx.store.write(
            rejects.select("source_key", "reason", "detail", "template",
                           F.col("description").alias("compatible_doc_description"), "query", "origin", "request_id"),
            TEMPLATE_REJECTS,
        ),
    }  # fmt: skip
    counts = {r["reason"]: int(r["count"]) for r in checked.groupBy("reason").count().collect()}
    rows_out = counts.pop(None, 0)
    result = StageResult(STAGE, rows_out + sum(counts.values()), rows_out, counts, tables=added,
                         seconds=time.monotonic() - started)  # fmt: skip
    result.metrics.update(slot_histogram(valid))
    result.metrics["templates_total"] = float(ctx.store.count(TEMPLATES))
    result.check_accounting()
    return result


def read_bank(spark: SparkSession, paths: list[str], caps: Capabilities) -> DataFrame:
    """(value: JSON row, input_file) for every bank row; Parquet rows are turned into JSON."""
    frames = []
    for path in paths:
        names = [path] if storage.is_remote(path) else list_input_files(path)
        if all(".parquet" in os.path.basename(n) for n in names):
            frame = spark.read.parquet(path)
            frames.append(frame.select(F.to_json(F.struct(*[F.col(c) for c in frame.columns])).alias("value"),
                                       F.lit(path).alias("input_file")))  # fmt: skip
        else:
            frames.append(read_documents(spark, path, caps))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _parse_rows(cfg: TemplatesConfig, batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        rows: list[tuple[object, ...]] = []
        for value, input_file in zip(batch["value"], batch["input_file"], strict=True):
            raw = bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value
            if raw is None or not str(raw).strip():
                continue
            origin = f"bank:{os.path.basename(str(input_file))}"
            key = "bank-" + text_hash(str(raw))[:24]
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, RecursionError) as exc:
                rows.append((key, None, None, "malformed_row", str(exc)[:200], origin))
                continue
            if not isinstance(record, dict):
                rows.append((key, None, None, "malformed_row", f"a JSON {type(record).__name__}", origin))
                continue
            template, desc = record.get(cfg.bank_template_column), record.get(cfg.bank_description_column)
            rows.append((key, _text(template), _text(desc), None, None, origin))
        yield pd.DataFrame(rows, columns=[c.split(" ")[0] for c in ROW_DDL.split(", ")])


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
