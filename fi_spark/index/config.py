"""Settings of the FAISS template index (fi_spark.index.build / artifact / distribute) and of matching."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fi_spark.section import Section


class IndexConfig(Section):
    """FAISS inner-product index over template description vectors (fi_spark.index)."""

    type: Literal["auto", "flat", "ivfpq", "hnsw"] = Field(default="auto", description="auto: flat up to flat_max")
    flat_max: int = Field(default=50_000, ge=1, description="auto picks exact Flat search up to this many vectors")
    large_type: Literal["ivfpq", "hnsw"] = Field(default="hnsw", description="what auto picks above flat_max")
    factory: str | None = Field(default=None, description="FAISS index_factory string; overrides type when set")
    ivf_nlist: int | None = Field(default=None, ge=1, description="default: about 4*sqrt(n)")
    pq_m: int = Field(default=48, ge=1, description="PQ sub-quantizers (must divide the dimension)")
    pq_bits: int = Field(default=8, ge=1, le=16)
    nprobe: int = Field(default=32, ge=1)
    hnsw_m: int = Field(default=32, ge=2)
    hnsw_ef_construction: int = Field(default=80, ge=1)
    hnsw_ef_search: int = Field(default=128, ge=1)
    train_sample: int = Field(default=100_000, ge=1000, description="vectors used to train IVF/PQ")
    recall_sample: int = Field(default=1000, ge=1, description="held-back queries for recall@k vs exact")
    recall_k: int = Field(default=10, ge=1)
    location: str | None = Field(default=None, description="artifact root (local or s3://); default <output>/index")
    distribute: Literal["auto", "broadcast", "addfile", "artifacts", "path"] = Field(
        default="auto", description="how workers get the index; auto follows the engine's capabilities"
    )
    broadcast_max_mb: int = Field(default=512, ge=1, description="auto broadcasts smaller indexes, ships files above")
    cache_dir: str = Field(default="~/.cache/fi-spark/index", description="where workers keep downloaded indexes")
    seed: int = 1234


class MatchConfig(Section):
    """match: documents -> top templates, with a per-document and a global per-template cap."""

    top_k: int = Field(default=20, ge=1, description="candidates retrieved per document vector")
    min_score: float = Field(default=0.2, ge=-1.0, le=1.0, description="inner product (cosine) below this is dropped")
    max_per_doc: int = Field(default=3, ge=1, description="templates kept per document")
    max_per_template: int | None = Field(default=100, ge=1, description="documents one template may serve")
    max_template_share: float | None = Field(
        default=None, gt=0.0, le=1.0, description="or this share of matched documents (the tighter cap wins)"
    )
    partitions: int | None = Field(default=None, ge=1, description="repartition the input to this many tasks")
