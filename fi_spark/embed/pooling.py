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
long documents. Units are chunk embeddings (`embed.pooling_unit=chunks`) or the token embeddings of
the whole document (`tokens`, `pool_windows`). Pure numpy, no Spark.

The released retriever (Hugging Face fineinstructions/instruction_template_retrieval_embedding,
`instruction_template_retriever.py` and its `GaussianCoveragePooling` layer in `pooling_coverage.py`,
revision 8681f11227006d21436604f369b51bc1d92e7634) pools the *token* embeddings of a document inside
the encoder's pass, with coverage_chunks=10, sigma=0.05, alpha=1.0 (alpha "blends standard mean with
weighted mean": alpha=1 is the Gaussian mean alone), loads `fineinstructions/matching_embedding` at
revision db4efbde126216250ffa5a356663fc7da3bf7856 and searches a FAISS IVF index with nprobe=150.
What of that layer is readable in public (its arguments and docstrings) is what the formula above
follows; its exact centre placement is not, so ours are the midpoints (j + 0.5) / N. This is our own
code: no remote code is loaded or run. Documents longer than the encoder's window are read as windows
that overlap (`window_spans`); a token seen by k windows counts 1/k in each, so every token of the
document weighs the same and the regions cover the whole document, not the first window.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def window_spans(n_tokens: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Token spans [start, end) of the encoder windows over `n_tokens` tokens: `size` tokens each, consecutive
    windows sharing `overlap`, the last one ending at the document's end (so it may be shorter)."""
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need 0 <= overlap < size, got size={size}, overlap={overlap}")
    spans: list[tuple[int, int]] = []
    start = 0
    while start < n_tokens:
        end = min(start + size, n_tokens)
        spans.append((start, end))
        if end == n_tokens:
            break
        start = end - overlap
    return spans


def pool_windows(
    n_tokens: int,
    windows: Sequence[tuple[int, int, npt.ArrayLike]],
    n_regions: int,
    sigma: float,
    alpha: float,
    min_units_for_regions: int = 2,
) -> tuple[FloatArray, FloatArray]:
    """Coverage pooling of a whole document's tokens read as windows: (start, end, token embeddings (end-start, d)).

    Equal to `gaussian_coverage_pool` over the stitched token matrix (each token the mean of the windows that
    read it, at position (i + 0.5) / n_tokens), computed window by window so a long document never holds all
    its token vectors at once.
    """
    if n_tokens < 1 or not windows:
        raise ValueError("a document needs at least one token and one window")
    seen = np.zeros(n_tokens)
    for start, end, _ in windows:
        seen[start:end] += 1
    if (seen == 0).any():
        raise ValueError(f"the windows leave {int((seen == 0).sum())} of {n_tokens} tokens unread")
    centres = region_centres(n_regions).astype(np.float64)
    with_regions = n_regions > 0 and n_tokens >= min_units_for_regions
    dim = np.asarray(windows[0][2]).shape[1]
    total, local, local_w = np.zeros(dim), np.zeros((n_regions, dim)), np.zeros(n_regions)
    for start, end, emb in windows:
        e = np.asarray(emb, dtype=np.float64)
        w = 1.0 / seen[start:end]
        total += w @ e
        if with_regions:
            pos = (np.arange(start, end, dtype=np.float64) + 0.5) / n_tokens
            kernel = w[None, :] * np.exp(-((pos[None, :] - centres[:, None]) ** 2) / (2.0 * sigma * sigma))
            local += kernel @ e
            local_w += kernel.sum(axis=1)
    mean = total / n_tokens
    if not with_regions:
        return _normalize(mean[None, :]), np.array([0.5], dtype=np.float32)
    safe = local_w > 1e-12
    g = np.where(safe[:, None], local / np.where(safe, local_w, 1.0)[:, None], mean[None, :])
    regions = alpha * g + (1.0 - alpha) * mean[None, :]
    return _normalize(np.vstack([mean[None, :], regions])), np.concatenate([[0.5], centres]).astype(np.float32)


def _normalize(x: npt.NDArray[np.float64]) -> FloatArray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
