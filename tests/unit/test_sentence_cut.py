"""The document shown to the instantiator ends after its last whole sentence (fi_spark.stages.sources)."""

from __future__ import annotations

import pytest

from fi_spark.stages.sources import sentence_cut

TEXT = "One two. Three four five. Six!\nSeven eight nine ten."  # sentence starts at 9, 26, 31


@pytest.mark.parametrize(
    ("max_chars", "end"),
    [(200, 52), (52, 52), (51, 30), (30, 25), (25, 8), (9, 8), (8, 8), (7, 3), (2, 2)],
)
def test_cut_after_the_last_sentence_that_fits(max_chars: int, end: int) -> None:
    """Whole text when it fits; else after the last sentence end within the limit; else at a space or the limit."""
    assert sentence_cut(TEXT, max_chars) == end
