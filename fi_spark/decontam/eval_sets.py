"""Loading the evaluation sets named by `decontam.eval_paths` into an n-gram index (fi_spark.decontam.overlap).

Files are read with Spark, so every path Spark can read works (local, s3://, dbfs:/), by suffix:
`.jsonl` / `.json` (JSON lines), `.parquet`, `.csv` (with a header), anything else as plain text, one
item per line. The text of an item is its `decontam.text_fields` columns joined by newlines (every
string column when the list is empty). Evaluation sets are small (thousands of items), so their texts
are streamed to the driver with `toLocalIterator` to build the index once; `decontam.max_ngrams` refuses
an index that would not be small.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from fi_spark.decontam.overlap import EvalNgramIndex
from fi_spark.section import ConfigError
from fi_spark.stages.base import StageContext


def read_eval_file(ctx: StageContext, path: str) -> DataFrame:
    """One evaluation file as a frame (format by suffix)."""
    lower = path.lower().rstrip("/")
    reader = ctx.spark.read
    if lower.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
        return reader.json(path)
    if lower.endswith(".parquet"):
        return reader.parquet(path)
    if lower.endswith((".csv", ".csv.gz")):
        return reader.option("header", True).csv(path)
    return reader.text(path)


def eval_items(ctx: StageContext) -> Iterator[tuple[str, str]]:
    """(source path, item text) for every item of every configured evaluation file."""
    cfg = ctx.config.decontam
    for path in cfg.eval_paths:
        df = read_eval_file(ctx, path)
        strings = [f.name for f in df.schema.fields if isinstance(f.dataType, StringType)]
        fields = list(cfg.text_fields) or strings
        missing = [f for f in fields if f not in df.columns]
        if missing or not fields:
            raise ConfigError(
                f"decontam.eval_paths {path}: text fields {missing or fields} not found; "
                f"string columns there: {strings} (set decontam.text_fields)"
            )
        text = F.concat_ws("\n", *[F.col(f).cast("string") for f in fields]).alias("text")
        for row in df.select(text).toLocalIterator():
            if row["text"]:
                yield path, row["text"]


def load_eval_index(ctx: StageContext) -> EvalNgramIndex | None:
    """The n-gram index of the evaluation sets, or None when decontamination is off (no paths)."""
    cfg = ctx.config.decontam
    if not cfg.eval_paths:
        return None
    index = EvalNgramIndex.build(eval_items(ctx), n=cfg.ngram, min_tokens=cfg.min_tokens)
    if len(index) > cfg.max_ngrams:
        raise ConfigError(
            f"decontam: the evaluation sets hold {len(index):,} distinct n-grams, over decontam.max_ngrams "
            f"({cfg.max_ngrams:,}); raise it if the workers have the memory (8 bytes each)"
        )
    ctx.log.info("decontam: %d n-grams of length <= %d from %s", len(index), cfg.ngram, ", ".join(index.sources))
    return index


def contamination(eval_index: EvalNgramIndex | None, texts: dict[str, str | None]) -> str | None:
    """The detail of the first text (field name -> text) sharing an n-gram with an evaluation set, else None."""
    for name, text in texts.items():
        overlap = eval_index.find(text or "") if eval_index is not None else None
        if overlap is not None:
            return f"{name} shares {eval_index.n}-gram '{overlap.ngram}' with {overlap.source}"  # type: ignore[union-attr]
    return None
