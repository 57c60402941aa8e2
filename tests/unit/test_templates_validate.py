"""Template validation: each reject reason, leftover query specifics, and the config knobs."""

from __future__ import annotations

import pytest

from fi_spark.config import TemplatesConfig
from fi_spark.genericize import REASONS, query_specifics, validate_template

CFG = TemplatesConfig()
DESC = "An encyclopedia article about a country that names its capital city."


def reason(template: str | None, desc: str | None = DESC, query: str | None = None, cfg: TemplatesConfig = CFG) -> str:
    verdict = validate_template(template, desc, cfg, query=query)
    return "ok" if verdict.ok else str(verdict.reason)


def test_good_template_passes() -> None:
    """A slotted template that dropped the query's specifics is accepted."""
    assert reason("What is the capital of <fi>a country</fi>?", query="What is the capital of Yugoslavia ?") == "ok"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "empty_template"),
        ("  ", "empty_template"),
        ("What is the capital of <fi>a country?", "malformed_tags"),
        ("What is the capital of <fi> </fi>?", "empty_slot"),
        ("What is the capital of France?", "too_few_slots"),
        ("<fi>a</fi>" * 11, "too_many_slots"),
        ("Summarize <fi>" + "x" * 151 + "</fi>", "slot_too_long"),
        ("<fi>qqq</fi>?", "template_too_short"),
        ("Explain <fi>a topic</fi> " + "in detail " * 120, "template_too_long"),
    ],
)
def test_template_reasons(template: str | None, expected: str) -> None:
    """Each structural rule has its own machine-readable reason."""
    assert expected in REASONS
    assert reason(template) == expected


@pytest.mark.parametrize(
    ("desc", "expected"),
    [
        (None, "missing_description"),
        ("", "missing_description"),
        ("A page.", "description_too_short"),
        ("x" * 1501, "description_too_long"),
    ],
)
def test_description_reasons(desc: str | None, expected: str) -> None:
    """The compatible document description is required and bounded."""
    assert reason("What is the capital of <fi>a country</fi>?", desc) == expected


@pytest.mark.parametrize(
    ("template", "expected", "detail"),
    [
        ("How do I cook a mé<fi>l</fi>m at home?", "slot_too_short", "1 chars: <fi>l</fi>"),  # snapped first
        ("What is the <fi>ordinal number</fi>th planet from the Sun?", "ok", None),  # `th` taken into the slot
        ("Where is Paris<fi>a landmark</fi> found?", "slot_splits_word",
         "slot inside a word: 'e is Paris<fi>a landmark</fi> found?'"),  # a whole word glued on: ambiguous
        ("How do you say <fi>x</fi> in French?", "slot_too_short", "1 chars: <fi>x</fi>"),
        ("Is <fi>an ox</fi> bigger than a horse?", "ok", None),
        ("Compare <fi>a product</fi> with <fi>A product</fi> for me.", "repeated_slot",
         "<fi>A product</fi> appears twice"),
        ("<fi>a question about a topic in some field</fi>?", "mostly_slots",
         "slot text is 0.97 of the template > 0.85"),
        ("What is <fi>a city</fi>'s population, roughly?", "ok", None),
    ],
)  # fmt: skip
def test_stricter_template_rules(template: str, expected: str, detail: str | None) -> None:
    """Slots cutting through words, repeated or tiny slots and slot-only templates each get their own reason."""
    verdict = validate_template(template, DESC, CFG)
    assert (verdict.reason or "ok", verdict.detail) == (expected, detail)


def test_good_templates_are_not_mostly_slots() -> None:
    """The shipped genericize examples (two or three slots in a short sentence) stay below the slot-share cap."""
    for template in (
        "How long should I <fi>cook a food item</fi> for <fi>a desired texture or result</fi>?",
        "Write a short <fi>type of text</fi> about <fi>a subject</fi> for <fi>an occasion or purpose</fi>.",
    ):
        assert reason(template) == "ok"


def test_repetitive_description_rejected() -> None:
    """A description that loops (a repeated 5-word run) is rejected, naming the run; a varied one passes."""
    looping = "A recipe that gives cooking times. A recipe that gives cooking times for eggs."
    verdict = validate_template("How long do I boil <fi>a food</fi>?", looping, CFG)
    assert (verdict.reason, verdict.detail) == (
        "repetitive_description",
        "'a recipe that gives cooking' occurs more than once",
    )
    assert reason("How long do I boil <fi>a food</fi>?", "A recipe that gives cooking times for eggs and rice.") == "ok"


def test_leftover_specifics_rejected_with_detail() -> None:
    """A template that kept a proper noun from the query outside slots is rejected, naming it."""
    verdict = validate_template(
        "What is the capital of Yugoslavia, a <fi>country</fi>?", DESC, CFG, query="What is the capital of Yugoslavia ?"
    )
    assert verdict.reason == "leftover_specifics"
    assert "'Yugoslavia'" in str(verdict.detail)


def test_leftover_inside_a_slot_is_fine() -> None:
    """Specifics that appear inside a slot description are not leftovers."""
    query = "How tall is the Eiffel Tower?"
    assert reason("How tall is <fi>a landmark such as the Eiffel Tower</fi>?", query=query) == "ok"


def test_leftover_check_is_configurable() -> None:
    """Switching the check off, or tolerating one leftover, accepts the same template."""
    template, query = "Write a Python function that <fi>does a task</fi>.", "Write a Python function that sorts a list."
    assert reason(template, query=query) == "leftover_specifics"
    assert reason(template, query=query, cfg=TemplatesConfig(check_leftover_specifics=False)) == "ok"
    assert reason(template, query=query, cfg=TemplatesConfig(max_leftover_specifics=1)) == "ok"


def test_query_specifics() -> None:
    """Numbers, mid-sentence capitals, quotes, urls and mixed case count; sentence starts and 'I' do not."""
    query = 'What did I pay for 3 iPhone cases at Best Buy? Check "summer sale" on https://example.com/x.'
    found = query_specifics(query)
    assert found == ["https://example.com/x", "summer sale", "3", "iPhone", "Best", "Buy"]
    assert "What" not in found and "I" not in found and "Check" not in found


def test_bank_templates_skip_the_query_check() -> None:
    """Imported templates have no query; only structure and lengths are checked."""
    assert reason("What is the capital of Yugoslavia, a <fi>country</fi>?", query=None) == "ok"


def test_snap_slots_takes_glued_letters_into_the_slot() -> None:
    """A slot cutting a word (`<fi>a profession</fi>s`) covers the whole word; switched off, it is a reject."""
    from fi_spark.genericize.validate import snap_slots

    assert snap_slots("What do <fi>a profession</fi>s earn?") == "What do <fi>a profession</fi> earn?"
    assert snap_slots("Is un<fi>a quality</fi> bad?") == "Is <fi>a quality</fi> bad?"
    assert snap_slots("Where is Paris<fi>a landmark</fi>?") == "Where is Paris<fi>a landmark</fi>?"
    strict = CFG.model_copy(update={"snap_slots": False})
    assert validate_template("What do <fi>a profession</fi>s earn?", DESC, strict).reason == "slot_splits_word"


@pytest.mark.parametrize(
    ("template", "query", "expected"),
    [
        ("Expand <fi>a sentence</fi> and give it more details.", None, "ok"),
        ("Expand the given sentence about <fi>a topic</fi>.", None, "needs_input"),
        ("What is the most recent version of the [keyword] in <fi>a product</fi>?", None, "placeholder"),
        ("What is <fi>a profession</fi>? An engineer who helps people manage risks by designing systems.",
         "What is an actuary?", "drifted_from_query"),
        ("What is <fi>a profession</fi>?", "What is an actuary?", "ok"),
    ],
)  # fmt: skip
def test_templates_that_cannot_make_a_self_contained_request(template: str, query: str | None, expected: str) -> None:
    """Issue #18's junk: a pointer to a missing input, a placeholder, a model writing on past the query."""
    cfg = CFG.model_copy(update={"min_query_word_share": 0.6})  # off by default (released templatizers rephrase)
    assert (validate_template(template, DESC, cfg, query=query).reason or "ok") == expected
