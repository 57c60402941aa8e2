"""Settings of MinHash LSH near-duplicate removal (fi_spark.dedup.near_dedup), run by prepare_corpus."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fi_spark.section import Section


class NearDedupConfig(Section):
    """MinHash LSH near-duplicate removal in prepare_corpus (fi_spark.dedup), after exact dedup."""

    enabled: bool = Field(
        default=True,
        description="on, as every web-corpus user expects: it costs little (thousands of docs/s, see bench/dedup.py)",
    )
    threshold: float = Field(default=0.8, gt=0, lt=1, description="Jaccard similarity of shingle sets")
    num_perm: int = Field(default=112, ge=2, le=1024)
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(default=5, ge=1, le=64, description="words (or characters) per shingle")
    bands: int | None = Field(default=None, ge=1, description="with rows; both unset = derived from threshold")
    rows: int | None = Field(default=None, ge=1)
    recall_weight: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="false-negative weight when deriving bands/rows (fp weight = 1 - it); 0.95 -> 14x8 at 0.8/112",
    )
    verify: Literal["none", "signature", "exact"] = Field(
        default="exact", description="check candidate pairs: exact shingle Jaccard, estimated Jaccard, or not"
    )
    survivor: Literal["smallest_id", "longest", "best_quality"] = "smallest_id"
    short_docs: Literal["whole", "skip"] = Field(
        default="whole", description="docs with fewer tokens than ngram: one whole-text shingle, or not deduped"
    )
    seed: int = 42
    max_iterations: int = Field(default=40, ge=1, description="connected-components rounds before giving up")

    @model_validator(mode="after")
    def _bands_rows(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("near_dedup.bands and near_dedup.rows: set both, or neither to derive them")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"near_dedup.bands x rows ({self.bands} x {self.rows}) exceeds num_perm ({self.num_perm})")
        return self
