"""fi_spark.instantiate.relevance: the answer window chosen by the encoder, and slot fit (real MiniLM, no Spark)."""

from __future__ import annotations

from fi_spark.config import EmbedConfig
from fi_spark.instantiate.relevance import best_windows, candidate_windows, slot_fit

DOC = (
    "Stephen King\n\nHe grew up in Maine. Stephen Edwin King (born September 21, 1947) is an American author of "
    "horror novels. His books have sold more than 350 million copies. He lives in Bangor."
)


def test_candidate_windows_name_the_value_and_answer_the_kind_asked() -> None:
    """Only windows of whole sentences that name the value and, for `Who is X?`, open by defining X."""
    windows = candidate_windows(DOC, ["Stephen Edwin King"], 3, 700, "Who is Stephen Edwin King?", 5)
    texts = [DOC[a:b] for a, b in windows]
    assert texts and all(t.startswith("Stephen Edwin King (born") for t in texts)
    assert candidate_windows(DOC, ["Marie Curie"], 3, 700) == []


def test_best_window_is_the_closest_to_the_instruction() -> None:
    """The encoder picks the window answering the request among the candidates."""
    candidates = [["He lives in Bangor.", "Stephen Edwin King (born September 21, 1947) is an American author."]]
    [(best, score)] = best_windows(EmbedConfig(), ["Who is Stephen Edwin King?"], candidates)
    assert best == 1 and score is not None and score > 0.5
    assert best_windows(EmbedConfig(), ["Who is X?"], [[]]) == [(None, None)]


def test_slot_fit_separates_kinds() -> None:
    """`a sovereign state` <- `Kenya` fits; <- `the 2003 boat race` does not (labeled junk, dolly)."""
    good, bad = slot_fit(
        EmbedConfig(), [["a sovereign state"], ["a sovereign state"]], [["Kenya"], ["the 2003 boat race"]]
    )
    assert good is not None and bad is not None and good > 0.2 > bad
