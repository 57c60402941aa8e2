"""LSH banding (fi_spark.dedup.lsh): bands/rows derived from the threshold and band bucket keys."""

from __future__ import annotations

import numpy as np
import pytest

from fi_spark.dedup.lsh import band_keys, candidate_probability, optimal_bands, resolve_bands


def test_optimal_bands_match_the_s_curve_criterion():
    """Equal weights put the S-curve midpoint at the threshold (datasketch's criterion); pinned values."""
    assert optimal_bands(0.8, 112) == (9, 12)
    assert optimal_bands(0.5, 128) == (25, 5)
    assert optimal_bands(0.8, 112, 0.2, 0.8) == (11, 10)
    b, r = optimal_bands(0.7, 112)
    assert b * r <= 112
    assert 0.3 < candidate_probability(0.7, b, r) < 0.7


def test_recall_weight_moves_the_curve_left():
    b1, r1 = resolve_bands(0.8, 112, None, None, recall_weight=0.5)
    b2, r2 = resolve_bands(0.8, 112, None, None, recall_weight=0.8)
    assert candidate_probability(0.8, b2, r2) > candidate_probability(0.8, b1, r1)


def test_explicit_bands_are_checked():
    assert resolve_bands(0.8, 112, 14, 8) == (14, 8)
    with pytest.raises(ValueError, match="both"):
        resolve_bands(0.8, 112, 14, None)
    with pytest.raises(ValueError, match="num_perm"):
        resolve_bands(0.8, 112, 15, 8)
    with pytest.raises(ValueError, match="threshold"):
        optimal_bands(1.0, 112)


def test_band_keys_equal_exactly_when_the_band_is_equal():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**32, size=(1, 112), dtype=np.uint64).astype(np.uint32)
    b = a.copy()
    b[0, 5] ^= 1  # differs in band 0 only (rows 0..7)
    keys = band_keys(np.vstack([a, b]), 14, 8)
    assert keys.shape == (2, 14) and keys.dtype == np.int64
    assert keys[0, 0] != keys[1, 0]
    assert np.array_equal(keys[0, 1:], keys[1, 1:])


def test_band_keys_are_pinned():
    """Bucket keys must be identical in every process and engine, and a band's key depends on its values only."""
    values = np.arange(16, dtype=np.uint32).reshape(1, 16)
    assert band_keys(values, 2, 8).tolist() == [[-4968222906360290678, -5666706779875748202]]
    first_band_alone = band_keys(np.arange(8, dtype=np.uint32).reshape(1, 8), 1, 8)
    assert int(first_band_alone[0, 0]) == -4968222906360290678


def test_band_keys_reject_short_signatures():
    with pytest.raises(ValueError, match="cannot hold"):
        band_keys(np.zeros((2, 10), dtype=np.uint32), 2, 8)
