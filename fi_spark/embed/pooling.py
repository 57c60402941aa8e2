"""Gaussian coverage pooling: one global vector plus N region vectors per document.

A long document's plain mean embedding is dominated by whatever most of it talks about, so a
template that fits only one part (a recipe inside a travel blog) never matches it. Coverage
pooling keeps the global mean and adds N Gaussian-weighted means centred at evenly spaced
positions along the document, each blended with the global mean:

    p_i   position of unit i in [0, 1] (chunk midpoint / document length, or token index)
    c_j   = (j + 0.5) / N                          j = 0 .. N-1
    K_ij  = w_i * exp(-(p_i - c_j)^2 / (2 sigma^2))     w_i = unit weight (e.g. its token count)
    m     = sum_i w_i e_i / sum_i w_i                   global mean
    g_j   = sum_i K_ij e_i / sum_i K_ij                 Gaussian mean around c_j
    r_j   = normalize(alpha * g_j + (1 - alpha) * m)
    out   = [normalize(m), r_0, ..., r_{N-1}]

sigma is a fraction of the document length, so N and sigma mean the same thing for short and
long documents. Units are chunk embeddings (whole documents, any length) or token embeddings
(within the encoder's window). Pure numpy, no Spark.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def region_centres(n_regions: int) -> FloatArray:
    """The N evenly spaced centres (j + 0.5) / N in [0, 1]."""
    return ((np.arange(n_regions, dtype=np.float64) + 0.5) / max(n_regions, 1)).astype(np.float32)


def unit_positions(n_units: int) -> FloatArray:
    """Default positions when none are known: the midpoints (i + 0.5) / n of n equal units."""
    return ((np.arange(n_units, dtype=np.float64) + 0.5) / max(n_units, 1)).astype(np.float32)


def gaussian_coverage_pool(
    embeddings: npt.ArrayLike,
    n_regions: int,
    sigma: float,
    alpha: float,
    positions: npt.ArrayLike | None = None,
    weights: npt.ArrayLike | None = None,
    min_units_for_regions: int = 2,
) -> tuple[FloatArray, FloatArray]:
    """Pool unit embeddings (n, d) into (1 + N, d) unit-length vectors and their centres.

    Returns (vectors, centres): row 0 is the global mean (centre 0.5), rows 1.. the regions. A
    document with fewer than `min_units_for_regions` units gets the global vector only: its
    regions would all equal it.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (n, d) array, got shape {emb.shape}")
    if sigma <= 0 or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"need sigma > 0 and 0 <= alpha <= 1, got sigma={sigma}, alpha={alpha}")
    n = emb.shape[0]
    pos = unit_positions(n).astype(np.float64) if positions is None else np.asarray(positions, dtype=np.float64)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if pos.shape != (n,) or w.shape != (n,):
        raise ValueError(f"positions and weights need shape ({n},), got {pos.shape} and {w.shape}")
    w = np.where(w > 0, w, 0.0)
    if w.sum() == 0:
        w = np.ones(n)
    mean = (w @ emb) / w.sum()
    if n_regions == 0 or n < min_units_for_regions:
        return _normalize(mean[None, :]), np.array([0.5], dtype=np.float32)
    centres = region_centres(n_regions).astype(np.float64)
    kernel = w[None, :] * np.exp(-((pos[None, :] - centres[:, None]) ** 2) / (2.0 * sigma * sigma))  # (N, n)
    kernel_sum = kernel.sum(axis=1, keepdims=True)
    # A centre far from every unit (tiny sigma) has a vanishing kernel: fall back to the global mean there.
    safe = kernel_sum[:, 0] > 1e-12
    local = np.where(safe[:, None], (kernel @ emb) / np.where(kernel_sum > 1e-12, kernel_sum, 1.0), mean[None, :])
    regions = alpha * local + (1.0 - alpha) * mean[None, :]
    vectors = np.vstack([mean[None, :], regions])
    return _normalize(vectors), np.concatenate([[0.5], centres]).astype(np.float32)


def _normalize(x: npt.NDArray[np.float64]) -> FloatArray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
