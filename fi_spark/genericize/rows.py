"""Shared by genericize and import_templates: validate candidate templates, then merge near-duplicates.

Both stages produce rows of (source_key, query, template, description, origin, model, request_id)
-- from the LLM or from a template bank -- and hand them to `check_templates` (one pure-Python pass
per row, fi_spark.genericize.validate) and `merge_templates` (window functions: one row per
template_id with every source query id). Our rules judge our genericizer's output and, when asked
(`templates.bank_rules=ours`), a bank; a released bank is kept as released (`usable_template`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from fi_spark.config.genericize import TemplatesConfig
from fi_spark.genericize import Verdict, parse_template, template_id, template_key, validate_template

CHECKED_DDL = (
    "source_key string, template_id string, canonical string, slots array<string>, n_slots int, "
    "reason string, detail string"
)


def check_templates(candidates: DataFrame, cfg: TemplatesConfig, released: bool = False) -> DataFrame:
    """Add template_id, canonical text, slots and (reason, detail) to candidate rows; reason null = valid.

    `candidates` needs source_key, template, description and query (null for banks); rows that
    already carry a `reason` (e.g. an LLM failure) keep it and are not validated. `released`: the rows
    are a released bank's, kept as released (`usable_template`) with an id per distinct text.
    """
    cols = candidates.select("source_key", "template", "description", "query", "reason", "detail")
    checked = cols.mapInPandas(partial(_check_batches, cfg, released), CHECKED_DDL)
    return candidates.drop("reason", "detail").join(checked, "source_key")


def usable_template(template: str | None, description: str | None) -> Verdict:
    """A released bank's template is kept unless it cannot be used at all: no text, tags that do not parse,
    no slot to fill, or no description to index it by. Our genericizer's stricter rules (slot counts and
    lengths, description bounds, repetition: `validate_template`) judge our own model's output, not a bank
    its authors already filtered; applying them would silently drop part of the released recipe."""
    if not isinstance(template, str) or not template.strip():
        return Verdict.reject("empty_template", "template is empty")
    parsed = parse_template(template)
    if parsed.problems and any(p.kind != "empty_slot" for p in parsed.problems):
        broken = [p for p in parsed.problems if p.kind != "empty_slot"][:5]
        return Verdict.reject("malformed_tags", "; ".join(f"{p.kind} at {p.position}: {p.detail!r}" for p in broken))
    if not parsed.slots:
        return Verdict.reject("too_few_slots", "no <fi> slot: nothing to instantiate", parsed)
    if not (description or "").strip():
        return Verdict.reject("missing_description", "compatible document description is empty", parsed)
    return Verdict(True, parsed=parsed)


def _check_batches(cfg: TemplatesConfig, released: bool, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        rows: list[tuple[object, ...]] = []
        for key, template, desc, query, reason, detail in batch.itertuples(index=False, name=None):
            if isinstance(reason, str):
                rows.append((key, None, None, None, None, reason, detail))
                continue
            if released:
                verdict = usable_template(template, desc)
            else:
                verdict = validate_template(template, desc, cfg, query=query if isinstance(query, str) else None)
            if not verdict.ok or verdict.parsed is None:
                rows.append((key, None, None, None, None, verdict.reason, verdict.detail))
                continue
            parsed = verdict.parsed
            tid = template_id(template_key(parsed, cfg.merge_near_duplicates and not released))
            rows.append((key, tid, parsed.canonical(), parsed.descriptions, len(parsed.slots), None, None))
        yield pd.DataFrame(rows, columns=[c.split(" ")[0] for c in CHECKED_DDL.split(", ")])


def merge_templates(valid: DataFrame) -> DataFrame:
    """One row per template_id (TEMPLATES columns). Kept text: the most common canonical text of the group,
    then the shortest, then the first alphabetically; its description comes from its smallest source key."""
    same_text = Window.partitionBy("template_id", "canonical")
    best = Window.partitionBy("template_id").orderBy(
        F.desc("n_same"), F.length("canonical"), F.asc("canonical"), F.asc("source_key")
    )
    rep = (
        valid.withColumn("n_same", F.count("*").over(same_text))
        .withColumn("_r", F.row_number().over(best))
        .where(F.col("_r") == 1)
    )
    sources = valid.groupBy("template_id").agg(
        F.sort_array(F.collect_set(F.col("query_id"))).alias("source_query_ids"),
    )
    return rep.join(sources, "template_id").select(
        "template_id",
        F.col("canonical").alias("template"),
        "slots",
        "n_slots",
        F.trim(F.col("description")).alias("compatible_doc_description"),
        "source_query_ids",
        "origin",
        "model",
    )


def slot_histogram(valid: DataFrame) -> dict[str, float]:
    """`slots_<n>` -> number of valid templates with n slots (a small aggregation)."""
    counts = valid.groupBy("n_slots").count().collect()
    return {f"slots_{int(r['n_slots'])}": float(r["count"]) for r in counts}
