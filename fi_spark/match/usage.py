"""How evenly templates are used: Gini coefficient and top share from a histogram of usage counts.

The match stage aggregates in Spark down to "how many templates were used c times" (a few hundred
rows even for millions of templates), so the driver only ever sees that histogram.
"""

from __future__ import annotations

from collections.abc import Mapping


def gini_from_histogram(count_of_counts: Mapping[int, int], n_templates: int | None = None) -> float:
    """Gini of template usage, 0 = perfectly even, -> 1 = one template takes everything.

    `count_of_counts[c]` = number of templates used exactly c times (c >= 1). With `n_templates`
    (the bank size), unused templates count as zeros, which is what "no template dominates the
    bank" means; without it, only used templates are compared. Formula for ascending x_1..x_n:
    G = sum_i (2i - n - 1) x_i / (n sum_i x_i), summed per histogram bucket in closed form.
    """
    hist = {int(c): int(m) for c, m in count_of_counts.items() if m > 0 and c > 0}
    used = sum(hist.values())
    n = max(n_templates or used, used)
    total = sum(c * m for c, m in hist.items())
    if n == 0 or total == 0:
        return 0.0
    start = n - used  # zeros occupy ranks 1..start and contribute nothing
    acc = 0.0
    for value in sorted(hist):
        m = hist[value]
        # sum over ranks i = start+1 .. start+m of (2i - n - 1)
        acc += value * (m * (2 * start + m + 1) - m * (n + 1))
        start += m
    return acc / (n * total)


def top_share(count_of_counts: Mapping[int, int]) -> float:
    """Share of all matches taken by the most used template."""
    total = sum(c * m for c, m in count_of_counts.items() if m > 0)
    return max(c for c, m in count_of_counts.items() if m > 0) / total if total else 0.0
