"""fi_spark.instantiate.slot_choices: the document's phrases a slot can take, and their order per slot."""

from __future__ import annotations

from fi_spark.config import EmbedConfig
from fi_spark.instantiate.slot_choices import document_phrases, rank_for_slots, slot_list_with_choices


def test_document_phrases_title_subject_and_names() -> None:
    """A title line, the subject the first sentence defines, then names; no months or capitalized first words."""
    text = (
        "Rowing\n\nRowing is a sport in which crews race boats. In July the Henley Royal Regatta is held on the Thames."
    )
    assert document_phrases(text) == ["Rowing", "Henley Royal Regatta", "Thames"]
    assert document_phrases("Dar es Salaam is the largest city of Tanzania.")[:2] == ["Dar es Salaam", "Tanzania"]


def test_rank_for_slots_puts_the_fitting_phrase_first() -> None:
    """Each slot gets the document's phrases, the one of its kind first (real MiniLM)."""
    phrases = ["Bangor", "Stephen Edwin King", "American"]
    [people] = rank_for_slots(EmbedConfig(), ["a famous person"], phrases, keep=2)
    assert people[0] == "Stephen Edwin King" and len(people) == 2
    assert rank_for_slots(EmbedConfig(), ["a city"], []) == [[]]


def test_slot_list_with_choices() -> None:
    """The `{slots}` placeholder lists each slot with its choices."""
    assert slot_list_with_choices(["a person", "a year"], [["King", "Maine"]]) == (
        "1. a person (copy one: King | Maine)\n2. a year"
    )
