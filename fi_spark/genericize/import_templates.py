"""Stage `import_templates`: a pre-built template bank (JSONL / Parquet) -> `templates`, `template_rejects`.

Lets users skip genericizing by loading a bank such as the released FineTemplates: each row needs a
template text (`templates.bank_template_column`, with `<fi>` slots) and a compatible document
description (`templates.bank_description_column`). A released bank is kept as released
(`templates.bank_rules=released`, the default): a row is rejected only when it cannot be used -- no
template text, tags that do not parse, no slot, no description (template_rows.usable_template) -- and
only rows of identical text share an id. Our stricter rules (slot counts, slot and description lengths,
repetition: fi_spark.genericize.validate) were written for our own genericizer's output; a bank its
authors filtered with theirs would lose part of the paper's recipe to them. `templates.bank_rules=ours`
applies them (and the near-duplicate merge) to a bank too; there is no source query, so the
leftover-specifics check does not apply. A row that fails the line-level rules every reader shares
(fi_spark.ingest.jsonline: encoding, JSON, nesting, Unicode, size) is a `malformed_row` whose detail
names that rule and quotes the start of the row. A bank row's key is a hash of the raw row, so importing
the same bank twice adds nothing.

Provenance: a FineTemplates-contract row (`{id, source_query_id, template, compatible_document_description,
...}`) names the query it was made from and, in some banks, its generator; `templates.bank_source_query_column`
and `templates.bank_generator_column` map them into the templates table's `source_query_ids` and `model`
(`templates.bank_generator` names the generator when the bank has no such column), and from there the
lineage's `source_query_ids` and `template_model`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from functools import partial

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.config.genericize import TemplatesConfig
from fi_spark.engine import Capabilities
from fi_spark.genericize.rows import check_templates, merge_templates, slot_histogram
from fi_spark.ingest.documents import damaged_rows, list_input_files, read_documents, split_damaged_parquet
from fi_spark.ingest.jsonline import parse_json_object, safe_excerpt
from fi_spark.schemas import TEMPLATE_REJECTS, TEMPLATES
from fi_spark.stages.base import StageContext, StageResult, StageTables
from fi_spark.text.normalize import text_hash

STAGE = "import_templates"
TABLES = StageTables(writes=(TEMPLATES, TEMPLATE_REJECTS))  # its funnel step is genericize's: templates kept
ROW_DDL = (
    "source_key string, template string, description string, reason string, detail string, origin string, "
    "query_id string, model string"
)


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
    released = cfg.bank_rules == "released"
    checked = ctx.store.materialize(
        check_templates(rows.withColumn("request_id", F.lit(None).cast("string")), cfg, released), f"{STAGE}/checked"
    )
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
            readable, damaged = ([path], []) if storage.is_remote(path) else split_damaged_parquet(names)
            if damaged:  # each file whose footer cannot be read is one malformed_row, the others are read
                frames.append(damaged_rows(spark, damaged))
            if readable:
                frame = spark.read.parquet(*readable)
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
            record, failed = parse_json_object(str(raw))
            if failed:  # the line-level reason goes into the detail, with an excerpt of the row
                detail = f"{failed[0]}: {failed[1][:200]}; row: {safe_excerpt(str(raw), 120)}"
                rows.append((key, None, None, "malformed_row", detail, origin, None, None))
                continue
            assert record is not None
            template, desc = record.get(cfg.bank_template_column), record.get(cfg.bank_description_column)
            rows.append((key, _text(template), _text(desc), None, None, origin, *_provenance(cfg, record)))
        yield pd.DataFrame(rows, columns=[c.split(" ")[0] for c in ROW_DDL.split(", ")])


def _provenance(cfg: TemplatesConfig, record: dict[str, object]) -> tuple[str | None, str | None]:
    """(source query id, generator) of a bank row; ids that are numbers are kept as their decimal text."""
    query = record.get(cfg.bank_source_query_column) if cfg.bank_source_query_column else None
    generator = record.get(cfg.bank_generator_column) if cfg.bank_generator_column else None
    query_id = str(query) if isinstance(query, (str, int)) and not isinstance(query, bool) and str(query) else None
    return query_id, _text(generator) or cfg.bank_generator


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
