"""Genericize prompt files: loading, message building, answer parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fi_spark.config import ConfigError
from fi_spark.templates import load_prompt, parse_answer, parse_template


def test_bundled_prompt_loads_and_builds_messages() -> None:
    """genericize.v1 has few-shot pairs whose templates are themselves valid, and ends with the query."""
    prompt = load_prompt("genericize.v1")
    msgs = prompt.messages("What is {the} capital of Peru?")
    assert msgs[0]["role"] == "system"
    assert [m["role"] for m in msgs[1:-1]] == ["user", "assistant"] * len(prompt.examples)
    assert msgs[-1] == {"role": "user", "content": "Query: What is {the} capital of Peru?"}
    for ex in prompt.examples:
        assert parse_template(ex.template).ok and parse_template(ex.template).slots
    assert prompt.label.startswith("genericize.v1@")
    assert prompt.response_schema["required"] == ["template", "compatible_document_description"]


def test_prompt_errors_name_the_file(tmp_path: Path) -> None:
    """Unknown names list the choices; a prompt without {query} is refused."""
    with pytest.raises(ConfigError, match="choose from .*genericize.v1"):
        load_prompt("nope.v9")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: g\nversion: 1\nsystem: s\nuser: no placeholder\nresponse_schema: {}\n")
    with pytest.raises(ConfigError, match="must contain"):
        load_prompt(str(bad))


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
