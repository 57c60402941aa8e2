"""The <fi> tag parser: well-formed templates, tag variants, and malformed LLM output."""

from __future__ import annotations

import pytest

from fi_spark.genericize import parse_template, template_id, template_key


def kinds(text: str) -> list[str]:
    return [p.kind for p in parse_template(text).problems]


def test_two_slots_with_spans_and_descriptions() -> None:
    """Slots come back in order with their descriptions and exact spans."""
    text = "How do I <fi>perform a task</fi> in <fi>a software tool</fi>?"
    parsed = parse_template(text)
    assert parsed.ok
    assert parsed.descriptions == ["perform a task", "a software tool"]
    first = parsed.slots[0]
    assert text[first.start : first.end] == "<fi>perform a task</fi>"
    assert parsed.literal_text("_") == "How do I _ in _?"


def test_case_and_space_variants_are_read_and_canonicalized() -> None:
    """`< FI >`/`</ fi>` are unambiguous: accepted, and canonical() rewrites them exactly."""
    parsed = parse_template("What is  < FI > a  city </ fi>'s population?")
    assert parsed.ok
    assert parsed.canonical() == "What is <fi>a city</fi>'s population?"


def test_no_slots_is_well_formed_but_empty() -> None:
    """A template without tags parses cleanly with zero slots (validation rejects it later)."""
    parsed = parse_template("What is the capital of France?")
    assert parsed.ok and parsed.slots == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tell me about <fi>a topic", ["unclosed_slot"]),
        ("Tell me about a topic</fi>", ["stray_close"]),
        ("Tell me <fi>about <fi>a topic</fi>", ["nested_slot"]),
        ("Tell me about <fi>a topic<fi>", ["unclosed_slot", "nested_slot"]),
        ("Tell me about <fi> </fi> now", ["empty_slot"]),
        ("Tell me about <fi a topic</fi>", ["malformed_tag", "stray_close"]),
        ("Tell me about <fi>a topic</fi", ["unclosed_slot", "malformed_tag"]),
        ("Tell me about fi>a topic</fi>", ["malformed_tag", "stray_close"]),
        ("<fi>x</fi></fi><fi>", ["stray_close", "unclosed_slot"]),
    ],
)
def test_malformed_tags_are_reported_not_raised(text: str, expected: list[str]) -> None:
    """Every malformed shape an LLM produces is named, in text order."""
    assert kinds(text) == expected


@pytest.mark.parametrize("value", [None, 42, "", "   "])
def test_non_text_input_parses_as_empty(value: object) -> None:
    """None, numbers and blanks never crash the parser."""
    parsed = parse_template(value)  # type: ignore[arg-type]
    assert parsed.slots == () and parsed.ok


def test_words_containing_fi_are_not_tags() -> None:
    """`fish>`, `<final>` or `wifi>` are ordinary text, not broken tags."""
    assert kinds("Is <final> wifi> fish <fi>a thing</fi>?") == []


def test_skeleton_merges_slot_wording_case_and_punctuation() -> None:
    """Near-duplicates (slot wording, case, punctuation, spacing) share one key and id."""
    a = parse_template("What is <fi>a city</fi>'s population?")
    b = parse_template("what is  <fi>name of a city</fi> s population")
    c = parse_template("What is <fi>a city</fi>'s area?")
    assert template_key(a) == template_key(b) == "what is <fi> s population"
    assert template_id(template_key(a)) == template_id(template_key(b))
    assert template_key(a) != template_key(c)
    assert template_key(a, merge_near_duplicates=False) != template_key(b, merge_near_duplicates=False)
