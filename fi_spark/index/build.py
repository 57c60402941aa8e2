"""FAISS inner-product indexes over unit-length template vectors: type by size, training, recall.

Inner product on unit vectors is cosine similarity, the score the embedding models are trained
for. The index type follows the bank's size (`IndexConfig`):
- up to `flat_max` vectors: exact `Flat` search (measured ~1,800 q/s at 10k x 384-d on 2 threads);
- above it: `HNSW<M>,Flat` (high recall, no training, ~1.6 KB/vector at 384-d) or
  `IVF<nlist>,PQ<m>x<bits>` (trained on a sample; ~m bytes/vector, for banks that must stay small).
An explicit FAISS `factory` string overrides the choice for experts.

FAISS is used directly (not a vector database) because the index must be a single file that
workers memory-map or deserialize; recall against exact search is measured on a held-back sample
of the bank's own vectors (excluded from IVF training), so every artifact states its quality.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt

from fi_spark.config.index import IndexConfig

FloatArray = npt.NDArray[np.float32]
log = logging.getLogger(__name__)
log.debug("faiss %s loaded (compile options: %s)", faiss.__version__, faiss.get_compile_options().strip())


@dataclass(frozen=True)
class IndexPlan:
    kind: str  # flat | hnsw | ivfpq | factory
    factory: str  # the FAISS index_factory string (whether it needs training, faiss says: index.is_trained)


def choose_index(n: int, dim: int, cfg: IndexConfig) -> IndexPlan:
    """Pick the index for `n` vectors of `dim` dimensions under `cfg`."""
    if n < 1:
        raise ValueError("cannot build an index over zero templates")
    if cfg.factory:
        return IndexPlan("factory", cfg.factory)
    kind = cfg.type if cfg.type != "auto" else ("flat" if n <= cfg.flat_max else cfg.large_type)
    if kind == "flat":
        return IndexPlan("flat", "Flat")
    if kind == "hnsw":
        return IndexPlan("hnsw", f"HNSW{cfg.hnsw_m},Flat")
    nlist = cfg.ivf_nlist or int(min(65536, max(16, 4 * math.sqrt(n))))
    nlist = max(1, min(nlist, n // 39 or 1))  # FAISS wants >= 39 training points per centroid
    m = _largest_divisor_at_most(dim, cfg.pq_m)
    return IndexPlan("ivfpq", f"IVF{nlist},PQ{m}x{cfg.pq_bits}")


def build_index(
    vectors: FloatArray,
    cfg: IndexConfig,
    plan: IndexPlan | None = None,
    holdout: npt.NDArray[np.int64] | None = None,
) -> faiss.Index:
    """Build (and train, for IVF/PQ) an inner-product index; row i of `vectors` gets id i.

    Rows in `holdout` (the recall sample) are indexed but never used for training, so recall is
    measured on vectors the quantizers did not fit.
    """
    x = _as_matrix(vectors)
    plan = plan or choose_index(x.shape[0], x.shape[1], cfg)
    index = faiss.index_factory(x.shape[1], plan.factory, faiss.METRIC_INNER_PRODUCT)
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
    for part in (index, _extract_ivf(index)):
        # Polysemous training (on by default for 8-bit PQ) only helps Hamming pre-filtering, which we do not
        # use, and it dominates training time (minutes for a few thousand vectors).
        if part is not None and hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
    if not index.is_trained:
        rng = np.random.default_rng(cfg.seed)
        pool = np.arange(x.shape[0])
        if holdout is not None and len(holdout) < x.shape[0]:
            pool = np.setdiff1d(pool, holdout)
        take = min(len(pool), cfg.train_sample)
        index.train(x[np.sort(rng.choice(pool, size=take, replace=False))])
    index.add(x)
    configure_search(index, cfg)
    return index


def configure_search(index: faiss.Index, cfg: IndexConfig) -> None:
    """Set query-time knobs (nprobe, efSearch); call again after loading an index from disk."""
    ivf = _extract_ivf(index)
    if ivf is not None:
        ivf.nprobe = min(cfg.nprobe, ivf.nlist)
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = cfg.hnsw_ef_search


def search(index: faiss.Index, queries: FloatArray, k: int) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Top-k (scores, ids) per query; ids are -1 where the index has fewer than k hits."""
    q = _as_matrix(queries)
    if q.shape[0] == 0:
        return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
    scores, ids = index.search(q, min(k, index.ntotal))
    if ids.shape[1] < k:  # pad to k columns so callers see a fixed shape
        pad = k - ids.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    return scores, ids


def recall_at_k(index: faiss.Index, vectors: FloatArray, queries: FloatArray, k: int) -> float:
    """Mean |approx top-k ∩ exact top-k| / k over `queries`, exact = brute force over `vectors`."""
    x, q = _as_matrix(vectors), _as_matrix(queries)
    if q.shape[0] == 0:
        return float("nan")
    k = min(k, x.shape[0])
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    _, truth = exact.search(q, k)
    _, approx = index.search(q, k)
    hits = sum(len(set(t[t >= 0]) & set(a[a >= 0])) for t, a in zip(truth, approx, strict=True))
    return hits / (q.shape[0] * k)


def held_back_sample(n: int, size: int, seed: int) -> npt.NDArray[np.int64]:
    """Row numbers of the recall sample (deterministic for a given seed)."""
    rng = np.random.default_rng(seed + 1)
    return np.sort(rng.choice(n, size=min(n, size), replace=False)).astype(np.int64)


def _extract_ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:  # not an IVF index
        return None


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _as_matrix(x: npt.ArrayLike) -> FloatArray:
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"expected an (n, d) matrix, got shape {arr.shape}")
    return arr
