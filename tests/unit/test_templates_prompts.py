"""Genericize prompt file, answer schema and answer parsing."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from fi_spark.config import ConfigError, PromptSpec, load_prompt
from fi_spark.genericize import GenericizeAnswer, check_genericize_prompt, parse_answer, parse_template


def test_bundled_prompt_is_valid_and_its_examples_pass_the_schema() -> None:
    """genericize.v1 formats {query}; every few-shot answer is itself a schema-valid, well-formed template."""
    spec = load_prompt("genericize.v1")
    check_genericize_prompt(spec)
    assert spec.examples
    for ex in spec.examples:
        answer = GenericizeAnswer.model_validate(ex.output)
        assert parse_template(answer.template).ok


def test_prompt_with_other_placeholders_is_refused() -> None:
    """A prompt asking for values the stage does not provide fails at load time, naming the problem."""
    spec = PromptSpec(name="g", version="v9", user="Q: {query} in {language}")
    with pytest.raises(ConfigError, match="must use exactly"):
        check_genericize_prompt(spec)


@pytest.mark.parametrize(
    "template",
    ["What is the capital of France?", "Tell me <fi>x", "<fi></fi> empty", "<fi>a <fi>b</fi></fi>"],
)
def test_schema_pattern_refuses_templates_without_a_clean_slot(template: str) -> None:
    """The structured-output pattern demands at least one non-empty, non-nested <fi> slot."""
    with pytest.raises(ValidationError):
        GenericizeAnswer(template=template, compatible_document_description="d")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (json.dumps({"template": "t <fi>x</fi>", "compatible_document_description": "d"}), ("t <fi>x</fi>", "d", None)),
        (json.dumps({"template": "t <fi>x</fi>"}), ("t <fi>x</fi>", None, None)),
        (None, (None, None, "no answer")),
        ("[1, 2]", (None, None, "answer is a list, not an object")),
        ('{"template": 3}', (None, None, "answer has no string 'template'")),
    ],
)
def test_parse_answer(answer: str | None, expected: tuple[object, ...]) -> None:
    """Answers of the wrong shape come back as a problem string, never an exception."""
    assert parse_answer(answer) == expected


def test_parse_answer_not_json() -> None:
    """Non-JSON text is reported as such."""
    assert str(parse_answer("{oops")[2]).startswith("answer is not JSON")


def test_template_from_query_is_the_query_with_spans_slotted() -> None:
    """genericize.v2: the template is built from the query, so it can only be the query's own words (issue #18)."""
    from fi_spark.genericize.prompts import template_from_query

    query = "What vitamins do white onions have?"
    assert template_from_query(query, [{"text": "White Onions", "description": "a vegetable"}]) == (
        "What vitamins do <fi>a vegetable</fi> have?",
        None,
    )
    template, problem = template_from_query(query, [{"text": "red onions", "description": "a vegetable"}])
    assert template is None and problem is not None and problem.startswith("slot_not_in_query:")
    overlapping = [{"text": "white onions", "description": "a vegetable"}, {"text": "onions", "description": "x y"}]
    assert template_from_query(query, overlapping)[1].startswith("slot_overlap:")  # type: ignore[union-attr]
    # a span must be whole words: `on` is inside `onions`
    assert template_from_query(query, [{"text": "on", "description": "a word"}])[0] is None


def test_parse_answer_builds_from_query_answers() -> None:
    """An answer with `slots` and no `template` is built against the query it came from."""
    from fi_spark.genericize import parse_answer

    answer = '{"slots": [{"text": "Marie Curie", "description": "a famous person"}], ' \
             '"compatible_document_description": "A biography of the person."}'  # fmt: skip
    assert parse_answer(answer, "Who was Marie Curie?") == (
        "Who was <fi>a famous person</fi>?",
        "A biography of the person.",
        None,
    )


def test_template_from_query_accepts_near_copies() -> None:
    """A leading article or a plural ending the query does not have still finds the query's own words."""
    from fi_spark.genericize.prompts import template_from_query

    assert template_from_query("Where do bears live?", [{"text": "bear", "description": "an animal"}]) == (
        "Where do <fi>an animal</fi> live?",
        None,
    )
    assert template_from_query("Give me a recipe for Tteokbokki", [{"text": "a tteokbokki", "description": "a dish"}])[
        0
    ] == ("Give me a recipe for <fi>a dish</fi>")
