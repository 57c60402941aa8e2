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
