"""Index type selection by size, building each type, search shape, and recall@k against exact search."""

from __future__ import annotations

from types import SimpleNamespace

import faiss
import numpy as np
import pytest

from fi_spark.config import ConfigError, IndexConfig
from fi_spark.index.build import build_index, choose_index, held_back_sample, recall_at_k, search
from fi_spark.index.distribute import choose_strategy

faiss.omp_set_num_threads(1)  # the test machine is shared; FAISS's OpenMP spin-waits badly when oversubscribed


def clustered(n: int, dim: int = 32, centres: int = 20, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few centres: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim))
    x = c[rng.integers(0, centres, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize(
    ("n", "cfg", "kind", "factory"),
    [
        (10, IndexConfig(), "flat", "Flat"),
        (50_000, IndexConfig(), "flat", "Flat"),
        (50_001, IndexConfig(), "hnsw", "HNSW32,Flat"),
        (250_000, IndexConfig(), "hnsw", "HNSW32,Flat"),
        (250_001, IndexConfig(), "ivfpq", "IVF128,PQ96x4fs"),  # a bank-sized index is compressed, whatever large_type
        (1_000_000, IndexConfig(large_type="ivfpq"), "ivfpq", "IVF256,PQ96x4fs"),  # nlist: power of 2 near sqrt(n)/4
        (18_000_000, IndexConfig(), "ivfpq", "IVF1024,PQ96x4fs"),
        (18_000_000, IndexConfig(train_sample=20_000), "ivfpq", "IVF512,PQ96x4fs"),  # 39 training vectors per list
        (1_000_000, IndexConfig(large_type="ivfpq", ivf_nlist=4000, pq_m=64, pq_bits=8), "ivfpq", "IVF4000,PQ64x8"),
        (5_000, IndexConfig(type="ivfpq"), "ivfpq", "IVF16,PQ96x4fs"),
        (10, IndexConfig(type="hnsw", hnsw_m=16), "hnsw", "HNSW16,Flat"),
        (10, IndexConfig(factory="IVF8,Flat"), "factory", "IVF8,Flat"),
    ],
)
def test_index_type_follows_size_and_config(n: int, cfg: IndexConfig, kind: str, factory: str) -> None:
    """Flat up to flat_max, the configured large type above it, explicit settings win."""
    plan = choose_index(n, 384, cfg)
    assert (plan.kind, plan.factory) == (kind, factory)


def test_pq_m_falls_back_to_a_divisor_of_the_dimension() -> None:
    """PQ needs m | dim: 48 sub-quantizers on 100-d vectors become 25; by default m = dim / 4 (1024-d: 256)."""
    assert choose_index(10_000, 100, IndexConfig(type="ivfpq", pq_m=48)).factory.endswith("PQ25x4fs")
    assert choose_index(10_000, 1024, IndexConfig(type="ivfpq")).factory.endswith("PQ256x4fs")


def test_zero_templates_is_an_error() -> None:
    """An empty bank cannot be indexed; the message says so."""
    with pytest.raises(ValueError, match="zero templates"):
        choose_index(0, 384, IndexConfig())


@pytest.mark.parametrize(
    ("cfg", "min_recall"),
    [
        (IndexConfig(type="flat"), 1.0),
        (IndexConfig(type="hnsw", hnsw_m=16), 0.9),
        (IndexConfig(type="ivfpq", pq_m=16, pq_bits=8, nprobe=16, train_sample=1000), 0.5),
        (IndexConfig(type="ivfpq", pq_m=32, nprobe=16, train_sample=1000), 0.3),  # 4-bit fast-scan, same bytes
    ],
)
def test_each_type_builds_searches_and_reports_recall(cfg: IndexConfig, min_recall: float) -> None:
    """Every type returns self-matches first and states its recall@10 vs exact search."""
    x = clustered(3000)
    index = build_index(x, cfg)
    assert index.ntotal == 3000 and index.metric_type == faiss.METRIC_INNER_PRODUCT
    sample = held_back_sample(len(x), 100, seed=cfg.seed)
    recall = recall_at_k(index, x, x[sample], 10)
    assert min_recall <= recall <= 1.0
    scores, ids = search(index, x[:5], 3)
    assert scores.shape == ids.shape == (5, 3)
    if cfg.type != "ivfpq":  # PQ scores are approximate
        assert ids[:, 0].tolist() == [0, 1, 2, 3, 4]
        np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_search_pads_when_the_bank_is_smaller_than_k() -> None:
    """k above the bank size gives -1 ids and -inf scores in the missing columns."""
    index = build_index(clustered(3), IndexConfig())
    scores, ids = search(index, clustered(2, seed=1), 5)
    assert ids.shape == (2, 5) and (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


@pytest.mark.parametrize(
    ("caps", "size_mb", "cfg", "expected"),
    [
        ({"spark_context": True, "artifacts": False}, 1, IndexConfig(), "broadcast"),
        ({"spark_context": True, "artifacts": False}, 80, IndexConfig(broadcast_max_mb=50), "addfile"),
        ({"spark_context": True, "artifacts": False}, 600, IndexConfig(), "path"),  # bank-sized: no driver copy
        ({"spark_context": False, "artifacts": True}, 101, IndexConfig(), "path"),
        ({"spark_context": False, "artifacts": True}, 1, IndexConfig(), "artifacts"),
        ({"spark_context": False, "artifacts": False}, 1, IndexConfig(), "path"),
        ({"spark_context": True, "artifacts": False}, 1, IndexConfig(distribute="path"), "path"),
    ],
)
def test_distribution_strategy_follows_engine_capabilities(
    caps: dict[str, bool], size_mb: int, cfg: IndexConfig, expected: str
) -> None:
    """Above path_min_mb every engine reads the shared path; below it classic: broadcast small / addFile larger;
    Connect: artifacts; Sail and the rest: shared path."""
    assert choose_strategy(SimpleNamespace(**caps), size_mb * 1024 * 1024, cfg) == expected


def test_impossible_strategy_is_a_config_error() -> None:
    """Asking for broadcast on an engine without sparkContext fails with a message naming the key."""
    with pytest.raises(ConfigError, match="index.distribute=broadcast"):
        choose_strategy(SimpleNamespace(spark_context=False, artifacts=False), 1, IndexConfig(distribute="broadcast"))
