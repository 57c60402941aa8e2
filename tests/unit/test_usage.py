"""Gini and top share of template usage, from the count-of-counts histogram the match stage collects."""

from __future__ import annotations

import pytest

from fi_spark.match.usage import gini_from_histogram, top_share


def gini_direct(values: list[int]) -> float:
    """Mean absolute difference definition: sum_ij |xi - xj| / (2 n^2 mean)."""
    n, mean = len(values), sum(values) / len(values)
    return sum(abs(a - b) for a in values for b in values) / (2 * n * n * mean)


def test_even_usage_is_zero_and_one_template_taking_all_approaches_one() -> None:
    """4 templates used 5 times each -> 0; 1 of 4 used (zeros counted) -> (n-1)/n = 0.75."""
    assert gini_from_histogram({5: 4}) == 0.0
    assert gini_from_histogram({20: 1}, n_templates=4) == pytest.approx(0.75)


@pytest.mark.parametrize("values", [[1, 2, 3, 4], [0, 0, 1, 9], [3, 3, 3, 1, 1, 7], [0, 5, 5, 5, 10]])
def test_matches_the_pairwise_definition(values: list[int]) -> None:
    """The closed form over histogram buckets equals the textbook pairwise formula."""
    hist: dict[int, int] = {}
    for v in values:
        if v:
            hist[v] = hist.get(v, 0) + 1
    assert gini_from_histogram(hist, n_templates=len(values)) == pytest.approx(gini_direct(values))


def test_top_share() -> None:
    """Most-used template's share of all matches: 9 of (1*2 + 9) here."""
    assert top_share({1: 2, 9: 1}) == pytest.approx(9 / 11)


def test_empty_histogram() -> None:
    """No matches at all: 0 for both numbers, no division by zero."""
    assert gini_from_histogram({}, n_templates=10) == 0.0
    assert top_share({}) == 0.0
