"""Settings of the dataset export (fi_spark.export)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fi_spark.section import Section


class ExportConfig(Section):
    """export: chat-format Parquet / JSONL shards, dataset card, per-shard token counts (fi_spark.export)."""

    location: str | None = Field(default=None, description="default: <output>/export")
    formats: tuple[Literal["parquet", "jsonl"], ...] = Field(default=("parquet", "jsonl"), min_length=1)
    rows_per_shard: int = Field(default=50_000, ge=1)
    validation_fraction: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="share of pairs in a validation split, chosen by id hash; 0 = none"
    )
    split_salt: str = Field(default="fi-spark", description="changing it draws a different (still deterministic) split")
    max_per_instruction: int | None = Field(
        default=2,
        ge=1,
        description="at most this many pairs per distinct instruction in the final view and the export "
        "(best verdicts first), so one template filled alike for many documents cannot fill it; null = no cap",
    )
    system_prompt: str | None = Field(default=None, description="optional system turn before the user turn")
    tokenizer: str = Field(default="minilm", description="counts tokens per shard; same choices as prepare.tokenizer")
    dataset_name: str = "fi-spark-instructions"
    licenses: dict[str, str] = Field(
        default_factory=dict, description="input source (a documents.metadata 'source' value or file name) -> license"
    )

    def where(self, output: str) -> str:
        """Where the shards and card go: `location`, else <output>/export."""
        from fi_spark import storage

        return self.location or storage.join(output, "export")
