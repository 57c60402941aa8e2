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
    compress_min: int = Field(
        default=250_000, ge=1,
        description="auto picks IVF-PQ above this many vectors whatever large_type says (HNSW at 1024-d is "
        "~4.3 KB/vector: 77 GB for 18M templates), and build_index streams template_vectors into it",
    )  # fmt: skip
    factory: str | None = Field(default=None, description="FAISS index_factory string; overrides type when set")
    ivf_nlist: int | None = Field(default=None, ge=1, description="default: the power of two nearest sqrt(n)")
    pq_m: int | None = Field(default=None, ge=1, description="PQ sub-quantizers (must divide the dimension)")
    pq_dims: int = Field(
        default=4, ge=1,
        description="default pq_m = dimension / pq_dims: 1024-d -> 256 codes of 4 bits = 128 bytes per template "
        "(2.3 GB for 18M; recall@10 0.40 vs 0.24 with 64 bytes at 100k, bench/index_scale.py); 384-d -> 96",
    )  # fmt: skip
    pq_bits: int = Field(default=4, ge=1, le=16, description="4 = FAISS fast-scan PQ (SIMD search)")
    nprobe: int = Field(default=32, ge=1, description="IVF lists searched per query (recall vs speed)")
    hnsw_m: int = Field(default=32, ge=2)
    hnsw_ef_construction: int = Field(default=80, ge=1)
    hnsw_ef_search: int = Field(default=128, ge=1)
    train_sample: int = Field(
        default=100_000, ge=1000, description="vectors used to train IVF/PQ at most (64 per IVF list wanted)"
    )
    recall_sample: int = Field(default=1000, ge=1, description="held-back queries for recall@k vs exact")
    recall_k: int = Field(default=10, ge=1)
    location: str | None = Field(default=None, description="artifact root (local or s3://); default <output>/index")
    distribute: Literal["auto", "broadcast", "addfile", "artifacts", "path"] = Field(
        default="auto", description="how workers get the index; auto follows the engine's capabilities"
    )
    broadcast_max_mb: int = Field(default=512, ge=1, description="auto broadcasts smaller indexes, ships files above")
    path_min_mb: int = Field(
        default=100, ge=1,
        description="auto has workers read (memory-map) indexes above this size from index.location on every "
        "engine: no driver copy, no copy per executor",
    )  # fmt: skip
    add_batch: int = Field(default=20_000, ge=1, description="vectors per add when build_index streams a bank")
    cache_dir: str = Field(default="~/.cache/fi-spark/index", description="where workers keep downloaded indexes")
    seed: int = 1234
