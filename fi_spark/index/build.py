"""FAISS inner-product indexes over unit-length template vectors: type by size, training, recall.

Inner product on unit vectors is cosine similarity, the score the embedding models are trained
for. The index type follows the bank's size (`IndexConfig`):
- up to `flat_max` vectors: exact `Flat` search (measured ~1,800 q/s at 10k x 384-d on 2 threads);
- above it: `large_type`, `HNSW<M>,Flat` by default (high recall, no training, ~1.6 KB/vector at 384-d,
  ~4.3 KB at 1024-d) or IVF-PQ;
- above `compress_min` always `IVF<nlist>,PQ<m>x4fs`: a bank the size of the paper's (~18M x 1024-d, 73 GB as
  float32) must be compressed to fit every executor. 4-bit fast-scan PQ, because on this CPU it trained 57x and
  added 9x faster than 8-bit PQ at 100k x 1024-d, searched 10x faster, and recalled more at the same bytes;
  with dim/4 codes (128 bytes at 1024-d), as recall@10 was 0.40 there against 0.24 with 64 bytes. It is
  trained on a sample, then filled batch by batch (`IndexBuilder`), so build_index streams `template_vectors`
  into it and never holds the bank's vectors.
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
    kind = cfg.type
    if kind == "auto":
        kind = "flat" if n <= cfg.flat_max else "ivfpq" if n > cfg.compress_min else cfg.large_type
    if kind == "flat":
        return IndexPlan("flat", "Flat")
    if kind == "hnsw":
        return IndexPlan("hnsw", f"HNSW{cfg.hnsw_m},Flat")
    m = _largest_divisor_at_most(dim, cfg.pq_m or max(1, dim // cfg.pq_dims))
    codes = f"PQ{m}x4fs" if cfg.pq_bits == 4 else f"PQ{m}x{cfg.pq_bits}"
    return IndexPlan("ivfpq", f"IVF{ivf_lists(n, cfg)},{codes}")


def ivf_lists(n: int, cfg: IndexConfig) -> int:
    """Coarse clusters of an IVF index over n vectors: `ivf_nlist`, or the power of two nearest sqrt(n)/4.

    Fewer, longer lists than FAISS's 4-16 x sqrt(n) guideline: building costs n x nlist x dim (every vector is
    compared with every centroid, then with its list's PQ codebooks), which at 1024-d dominates the build, while
    4-bit fast-scan PQ scans long lists cheaply at query time; a power of two keeps the choice stable as the
    bank grows by a few templates. Capped so that every centroid gets >= 39 training vectors from the training
    sample (FAISS's minimum for a meaningful k-means): 100k -> 64, 500k -> 128, 1M and 2M -> 256, 18M -> 1024.
    """
    if cfg.ivf_nlist:
        return max(1, min(cfg.ivf_nlist, n // 39 or 1))
    nlist = 2 ** round(math.log2(max(1.0, math.sqrt(n) / 4)))
    cap = max(1, min(n, cfg.train_sample) // 39)
    while nlist > cap and nlist > 1:
        nlist //= 2
    return max(1, nlist)


def train_size(plan: IndexPlan, n: int, cfg: IndexConfig) -> int:
    """Vectors to train an IVF index on: 64 per coarse centroid (FAISS's rule of thumb is 30-256), within
    `train_sample` and the bank; the PQ codebooks (16 centroids per sub-quantizer at 4 bits) need far fewer."""
    nlist = _ivf_nlist_of(plan.factory)
    want = 64 * nlist if nlist else cfg.train_sample
    return max(1, min(n, cfg.train_sample, want))


def _ivf_nlist_of(factory: str) -> int:
    for part in factory.split(","):
        if part.startswith("IVF"):
            digits = "".join(ch for ch in part[3:] if ch.isdigit())
            return int(digits) if digits else 0
    return 0


def new_index(plan: IndexPlan, dim: int, cfg: IndexConfig) -> faiss.Index:
    """An empty inner-product index for `plan`, with its build-time knobs set."""
    index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
    for part in (index, _extract_ivf(index)):
        # Polysemous training (on by default for 8-bit PQ) only helps Hamming pre-filtering, which we do not
        # use, and it dominates training time (minutes for a few thousand vectors).
        if part is not None and hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
    return index


class IndexBuilder:
    """An index built in steps, for banks too large to hold: `train` on a sample (when the type needs it),
    then `add` batches in order (the i-th vector added gets id i), then `finish`.

    >>> builder = IndexBuilder(choose_index(n, dim, cfg), dim, cfg)
    >>> if builder.needs_training: builder.train(sample)
    >>> for batch in batches: builder.add(batch)
    >>> index = builder.finish()
    """

    def __init__(self, plan: IndexPlan, dim: int, cfg: IndexConfig) -> None:
        self.plan, self.cfg = plan, cfg
        self.index = new_index(plan, dim, cfg)

    @property
    def needs_training(self) -> bool:
        return not self.index.is_trained

    def train(self, sample: FloatArray) -> None:
        self.index.train(_as_matrix(sample))

    def add(self, batch: FloatArray) -> None:
        if self.needs_training:
            raise RuntimeError(f"{self.plan.factory} must be trained on a sample before vectors are added")
        self.index.add(_as_matrix(batch))

    def finish(self) -> faiss.Index:
        configure_search(self.index, self.cfg)
        return self.index


class ExactTopK:
    """Exact top-k of fixed queries over vectors that arrive in batches: the ground truth for recall@k when
    the bank is never in memory at once. Row ids count the vectors seen, in order, as IndexBuilder numbers them."""

    def __init__(self, queries: FloatArray, k: int) -> None:
        self.queries = _as_matrix(queries)
        self.k = k
        self.scores = np.full((self.queries.shape[0], k), -np.inf, dtype=np.float32)
        self.ids = np.full((self.queries.shape[0], k), -1, dtype=np.int64)
        self.seen = 0

    def update(self, batch: FloatArray) -> None:
        x = _as_matrix(batch)
        if self.queries.shape[0] and x.shape[0]:
            scores = np.hstack([self.scores, self.queries @ x.T])
            ids = np.hstack(
                [self.ids, np.broadcast_to(np.arange(self.seen, self.seen + x.shape[0]), scores[:, self.k :].shape)]
            )
            top = np.argpartition(-scores, min(self.k, scores.shape[1] - 1), axis=1)[:, : self.k]
            self.scores = np.take_along_axis(scores, top, axis=1)
            self.ids = np.take_along_axis(ids, top, axis=1)
        self.seen += x.shape[0]

    def recall(self, index: faiss.Index, queries: FloatArray | None = None) -> float:
        """Mean |approx top-k ∩ exact top-k| / k of `index` (searched as configured) over the queries, given as
        the index sees them when the exact scores were computed in another space (default: the same ones)."""
        if self.queries.shape[0] == 0:
            return float("nan")
        k = min(self.k, self.seen)
        _, approx = index.search(self.queries if queries is None else _as_matrix(queries), k)
        truth = self.ids if k == self.k else self._top(k)
        hits = sum(len(set(t[t >= 0]) & set(a[a >= 0])) for t, a in zip(truth, approx, strict=True))
        return hits / (self.queries.shape[0] * k)

    def _top(self, k: int) -> npt.NDArray[np.int64]:
        order = np.argsort(-self.scores, axis=1)[:, :k]
        return np.take_along_axis(self.ids, order, axis=1)


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
    index = new_index(plan, x.shape[1], cfg)
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
