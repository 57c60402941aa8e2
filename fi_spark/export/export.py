"""Stage `export`: the final pairs -> chat-format Parquet / JSONL shards, dataset card, stats.json.

Reads the final view (pairs with a judge score at or above `judge.threshold`, with lineage:
fi_spark.export.lineage), turns each pair into a record -- `id`, `messages` (optional system turn, user
= instruction, assistant = answer) and the lineage columns -- assigns a split (deterministic by id,
fi_spark.export.records) and a shard (xxhash64 of the id modulo the split's shard count), and lets every
Spark task write its own shards (fi_spark.export.shards via mapInArrow). The driver collects one small
statistics row per file, then writes `stats.json` and `README.md` (fi_spark.export.card).

The export folder is rebuilt on every run: old shards are deleted first, so a smaller re-export never
leaves stale files, and the same tables always give the same files.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.pandas.types import to_arrow_schema

from fi_spark import storage
from fi_spark.config import Config
from fi_spark.export.card import CardFunnelRow, CardInputs, ShardStat, SourceStat, render_card
from fi_spark.export.lineage import LINEAGE_COLUMNS, QUERY_COLUMNS, final_pairs
from fi_spark.export.records import shard_count, split_for
from fi_spark.export.shards import STATS_SCHEMA, ShardWriter
from fi_spark.report.collect import Tables, funnel, llm_stats, rejects, stage_costs
from fi_spark.schemas import DOCUMENTS, JUDGED, PAIRS
from fi_spark.stages.base import FunnelStep, PipelineLayout, StageContext, StageResult, StageTables

STAGE = "export"
TABLES = StageTables(reads=(PAIRS, JUDGED), funnel=(FunnelStep("pairs", "exported"),))  # writes files


def run(ctx: StageContext, layout: PipelineLayout) -> StageResult:
    started = time.time()
    cfg = ctx.config.export
    location = cfg.where(ctx.output)
    final = final_pairs(ctx)
    if final.limit(1).count():  # an empty frame would come back from Parquet without its columns
        final = ctx.store.materialize(final, "export_final")
    records = to_records(final, ctx.config)
    per_split = {r["split"]: int(r["count"]) for r in records.groupBy("split").count().collect()}
    rows_in = sum(per_split.values())

    fs, root = storage.filesystem(location)
    fs.create_dir(root, recursive=True)
    fs.delete_dir_contents(f"{root}/data", missing_dir_ok=True)
    stats = write_shards(ctx, records, per_split, location) if rows_in else []
    written = sum(s.rows for s in stats if s.format == cfg.formats[0])

    card = render_card(card_inputs(ctx, final, stats, written, layout))
    summary = {
        "rows": written,
        "splits": per_split,
        "shards": [s.__dict__ for s in stats],
        "tokens": sum(s.tokens for s in stats if s.format == cfg.formats[0]),
        "threshold": ctx.config.judge.threshold,
    }
    _write_text(location, "README.md", card)
    _write_text(location, "stats.json", json.dumps(summary, indent=2))
    local_card = os.path.join(ctx.work_dir or ".", "export_README.md")
    with open(local_card, "w", encoding="utf-8") as fh:
        fh.write(card)
    ctx.log.info("export: %d pairs in %d files under %s", written, len(stats), location)
    result = StageResult(
        STAGE,
        rows_in=rows_in,
        rows_out=written,
        rejected={"not_written": rows_in - written} if rows_in != written else {},
        metrics={"files": float(len(stats)), "tokens": float(summary["tokens"])},  # type: ignore[arg-type]
        artifacts={"export/README.md": local_card},
        seconds=time.time() - started,
    )
    result.check_accounting()
    return result


def to_records(final: DataFrame, config: Config) -> DataFrame:
    """Final pairs -> id, messages, lineage columns, split."""
    cfg = config.export
    turns = [F.struct(F.lit("user").alias("role"), F.col("instruction").alias("content"))]
    turns.append(F.struct(F.lit("assistant").alias("role"), F.col("answer").alias("content")))
    if cfg.system_prompt:
        turns.insert(0, F.struct(F.lit("system").alias("role"), F.lit(cfg.system_prompt).alias("content")))
    fraction, salt = cfg.validation_fraction, cfg.split_salt

    @pandas_udf("string")  # type: ignore[call-overload]
    def split_of(ids: pd.Series) -> pd.Series:
        return ids.map(lambda i: split_for(i, fraction, salt))

    meta = list(dict.fromkeys(c for c in (*LINEAGE_COLUMNS, *QUERY_COLUMNS) if c in final.columns))
    return final.select(F.col("pair_id").alias("id"), F.array(*turns).alias("messages"), *meta).withColumn(
        "split", split_of(F.col("id"))
    )


def write_shards(ctx: StageContext, records: DataFrame, per_split: dict[str, int], location: str) -> list[ShardStat]:
    """One grouped-map call per (split, shard) writes its files; returns one ShardStat per file (small collect)."""
    cfg = ctx.config.export
    shards = {split: shard_count(n, cfg.rows_per_shard) for split, n in per_split.items()}
    counts = ctx.spark.createDataFrame([(k, v) for k, v in shards.items()], "split string, shards int")
    keyed = records.join(F.broadcast(counts), "split").withColumn(
        "shard", F.pmod(F.xxhash64("id"), F.col("shards")).cast("int")
    )
    columns = records.drop("split").columns
    writer = ShardWriter(location, cfg.formats, cfg.tokenizer, to_arrow_schema(records.select(*columns).schema))
    rows = (
        keyed.select("split", "shard", "shards", *columns)
        .groupBy("split", "shard")
        .applyInPandas(lambda frame: writer.write_frame(frame), _spark_schema(STATS_SCHEMA))  # 1-arg: no key
        .collect()
    )
    stats = [
        ShardStat(r["split"], r["file"], r["format"], int(r["rows"]), int(r["tokens"]), int(r["bytes"])) for r in rows
    ]
    return sorted(stats, key=lambda s: (s.split != "train", s.split, s.file))


def card_inputs(
    ctx: StageContext, final: DataFrame, stats: list[ShardStat], written: int, layout: PipelineLayout
) -> CardInputs:
    """The numbers of the dataset card, all from small aggregations."""
    config = ctx.config
    tables = Tables(ctx.store, layout.tables)
    steps = funnel(tables, config, written, layout.funnel)
    docs_by_source = (
        ctx.store.read(DOCUMENTS)
        .groupBy(F.coalesce(F.col("metadata").getItem("source"), F.col("input_file"), F.lit("unknown")).alias("source"))
        .agg(
            F.count("*").alias("documents"),
            F.first(F.col("metadata").getItem("license"), ignorenulls=True).alias("lic"),
        )
    )
    pairs_by_source = final.groupBy("source").agg(F.count("*").alias("pairs"))
    source_rows = (
        docs_by_source.join(pairs_by_source, "source", "outer").orderBy(F.desc_nulls_last("pairs"), "source").limit(50)
    ).collect()
    sources = [
        SourceStat(r["source"], int(r["documents"] or 0), int(r["pairs"] or 0), _license(config, r["source"], r["lic"]))
        for r in source_rows
    ]
    # role -> (model column, prompt column) of the final view: each LLM stage's own model (Config.stage_llm)
    roles = {"genericize": ("template_model", "template_origin"), "instantiate": ("instantiate_model",
             "instantiate_prompt"), "judge": ("judge_model", "judge_prompt")}  # fmt: skip
    roles = {role: cols for role, cols in roles.items() if set(cols) <= set(final.columns)}  # no templates table
    seen = final.select(*{c for cols in roles.values() for c in cols}).distinct().limit(20).collect()
    models = {role: ", ".join(sorted({r[m] for r in seen if r[m]})) for role, (m, _) in roles.items()}
    prompts = {role: ", ".join(sorted({r[p] for r in seen if r[p]})) for role, (_, p) in roles.items()}
    return CardInputs(
        dataset_name=config.export.dataset_name,
        cost=stage_costs(llm_stats(tables), written, config),
        gpu_rates=config.report.rates(),
        shards=stats,
        sources=sources,
        funnel=_funnel_steps(steps),
        rejects={
            f"{table}/{reason}": n
            for table, reasons in rejects(tables, config).items()
            for reason, n in reasons.items()
        },
        models={k: v for k, v in models.items() if v},
        prompts={k: v for k, v in prompts.items() if v},
        filters=filters(config),
        tokenizer=config.export.tokenizer,
        columns=dict(LINEAGE_COLUMNS),
        system_prompt=config.export.system_prompt,
    )


def _funnel_steps(steps: list[Any]) -> list[CardFunnelRow]:
    """Report funnel rows -> card rows whose `rows in` is the previous step of the same unit."""
    out: list[CardFunnelRow] = []
    previous: dict[str, int] = {}
    for step in steps:
        out.append(CardFunnelRow(f"{step.unit}: {step.step}", previous.get(step.unit, step.rows), step.rows))
        previous[step.unit] = step.rows
    return out


def filters(config: Config) -> list[str]:
    """One sentence per filter the pairs passed, with its threshold."""
    inst, judge, dec = config.instantiate, config.judge, config.decontam
    lines = [
        (
            f"instructions with leftover `<fi>` slot tags or empty, and answers under {inst.min_answer_tokens} "
            "word tokens, were rejected"
        ),
        (
            f"grounding >= {inst.min_grounding:g}: at least that share of answer word tokens lies in verbatim "
            f"excerpts of >= {inst.grounding_min_span} tokens of the source text"
        ),
        f"judge score >= {judge.threshold:g} on a {judge.scale_min}..{judge.scale_max} rubric scale",
    ]
    if dec.eval_paths:
        lines.append(
            f"decontamination: no {dec.ngram}-gram shared with {', '.join(dec.eval_paths)} "
            f"(fields checked: {', '.join(dec.check)})"
        )
    else:
        lines.append("decontamination: off (no decontam.eval_paths)")
    return lines


def _license(config: Config, source: str | None, from_metadata: str | None) -> str:
    licenses = config.export.licenses
    if source in licenses:
        return licenses[source]
    if source and os.path.basename(source) in licenses:
        return licenses[os.path.basename(source)]
    return from_metadata or "unknown (set export.licenses)"


def _write_text(location: str, name: str, text: str) -> None:
    storage.write_bytes(storage.join(location, name), text.encode("utf-8"))


def _spark_schema(schema: Any) -> str:
    """The Arrow stats schema as a Spark DDL string (applyInPandas wants a Spark schema)."""
    names = {"string": "string", "int32": "int", "int64": "bigint"}
    return ", ".join(f"{f.name} {names[str(f.type)]}" for f in schema)
