"""Token pooling over a whole document read in overlapping windows (fi_spark.embed.pooling), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fi_spark.embed.pooling import gaussian_coverage_pool, pool_windows, window_spans

# 2 sigma^2 = (1/8)^2 / ln 2: a token 1/8 from a centre weighs exp(-ln 2) = 1/2, 3/8 away 2^-9, 5/8 away 2^-25
SIGMA = 0.125 / math.sqrt(2 * math.log(2))


def test_window_spans_overlap_and_end_at_the_document_end() -> None:
    """Windows of 4 tokens sharing 1: 0-4, 3-7, 6-10; a document that fits is one window; no tokens, none."""
    assert window_spans(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert window_spans(4, 4, 1) == [(0, 4)]
    assert window_spans(11, 4, 0) == [(0, 4), (4, 8), (8, 11)]
    assert window_spans(0, 4, 1) == []
    with pytest.raises(ValueError, match="overlap < size"):
        window_spans(10, 4, 4)


def test_hand_computed_two_windows_two_regions() -> None:
    """4 tokens, windows 0-3 and 2-4 (token 2 read twice: (0,2) then (2,0), each counted 1/2, so (1,1)).

    Tokens at (i + 0.5)/4 = 1/8, 3/8, 5/8, 7/8; stitched e = (1,0), (1,0), (1,1), (0,1).
    Global: sum (3, 2) -> (3, 2)/sqrt(13) = (0.832050, 0.554700).
    Region c=1/4, kernel (1/2, 1/2, 2^-9, 2^-25): (1 + 2^-9, 2^-9 + 2^-25) -> (0.999998, 0.001949).
    Region c=3/4, kernel (2^-25, 2^-9, 1/2, 1/2): (1/2 + 2^-9 + 2^-25, 1) -> (0.448610, 0.893728).
    alpha = 1 (the released helper's): each region is its Gaussian mean alone.
    """
    windows = [(0, 3, [[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]), (2, 4, [[2.0, 0.0], [0.0, 1.0]])]
    vectors, centres = pool_windows(4, windows, 2, SIGMA, 1.0)
    np.testing.assert_allclose(centres, [0.5, 0.25, 0.75])
    expected = [[0.832050, 0.554700], [0.999998, 0.001949], [0.448610, 0.893728]]
    np.testing.assert_allclose(vectors, expected, atol=2e-6)


def test_one_window_equals_pooling_the_token_matrix() -> None:
    """A document inside one window pools exactly as gaussian_coverage_pool over its tokens (10 regions)."""
    rng = np.random.default_rng(7)
    tokens = rng.normal(size=(37, 5))
    windowed, _ = pool_windows(37, [(0, 37, tokens)], 10, 0.05, 1.0)
    direct, _ = gaussian_coverage_pool(tokens, 10, 0.05, 1.0)
    np.testing.assert_allclose(windowed, direct, atol=1e-6)


def test_short_document_gets_regions_and_unread_tokens_are_an_error() -> None:
    """min_units_for_regions=1: a 1-token document still has 1 + N vectors; a gap in the windows is refused."""
    vectors, _ = pool_windows(1, [(0, 1, [[0.0, 3.0]])], 3, 0.05, 1.0, min_units_for_regions=1)
    np.testing.assert_allclose(vectors, [[0.0, 1.0]] * 4)
    with pytest.raises(ValueError, match="leave 1 of 4 tokens unread"):
        pool_windows(4, [(0, 3, np.ones((3, 2)))], 2, 0.05, 1.0)
