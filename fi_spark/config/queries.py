"""Settings of query ingestion (fi_spark.ingest.ingest_queries)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fi_spark.section import Section


class QueriesConfig(Section):
    """ingest_queries: raw user queries (JSONL / Parquet / CSV with a text column) -> `queries`."""

    inputs: list[str] = Field(default_factory=list, description="files or folders (local or s3://) of raw queries")
    format: Literal["auto", "jsonl", "parquet", "csv"] = Field(default="auto", description="auto = by file suffix")
    text_column: str = "text"
    id_column: str | None = Field(default="id", description="optional source id column (kept as source_id)")
    source_column: str | None = Field(default="source", description="optional provenance column")
    min_chars: int = Field(default=3, ge=1, description="shorter normalized queries are rejected")
    max_chars: int = Field(default=4000, ge=1, description="longer queries are rejected, not truncated")

    @model_validator(mode="after")
    def _min_below_max(self) -> QueriesConfig:
        if self.min_chars > self.max_chars:
            raise ValueError("queries.min_chars must not exceed queries.max_chars")
        return self
