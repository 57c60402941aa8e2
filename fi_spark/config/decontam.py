"""Settings of the decontam stage (fi_spark.decontam)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fi_spark.section import Section


class DecontamConfig(Section):
    """Drop pairs sharing a long n-gram with evaluation sets (fi_spark.decontam.overlap); off when no paths."""

    eval_paths: list[str] = Field(
        default_factory=list, description="evaluation files (jsonl/json/parquet/csv/txt, local or s3://); empty = off"
    )
    text_fields: list[str] = Field(
        default_factory=list, description="columns holding eval text; empty = every string column"
    )
    ngram: int = Field(default=13, ge=3, description="overlap length in word tokens (GPT-3 used 13)")
    min_tokens: int = Field(default=8, ge=1, description="eval items shorter than this are ignored")
    check: tuple[Literal["instruction", "answer"], ...] = Field(default=("instruction", "answer"), min_length=1)
    max_ngrams: int = Field(default=50_000_000, ge=1, description="refuse eval sets with more distinct n-grams")
