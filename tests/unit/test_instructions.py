"""fi_spark.text.instructions: requests that cannot be read alone, and writing tasks no excerpt answers."""

from __future__ import annotations

import pytest

from fi_spark.text.instructions import query_problem, request_problem


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("What is the most recent version of the [keyword]?", "placeholder"),  # the pair issue #18 found exported
        ("Write a blog post about {topic} for beginners.", "placeholder"),
        ("The capital of ___ is Paris.", "placeholder"),
        ("Expand the given sentence and give it more details and depth.", "needs_input"),  # exported 3 times
        ("Summarize the following text in two sentences", "needs_input"),
        ("What is the main idea of this passage?", "needs_input"),
        ("Classify each of the following as a primary color or a secondary color", "needs_input"),
        ("Translate into French:", "needs_input"),
    ],
)
def test_request_problem_rejects(text: str, reason: str) -> None:
    """Placeholders and pointers to an input that is not there are refused, with the evidence."""
    problem = request_problem(text)
    assert problem is not None and problem[0] == reason


@pytest.mark.parametrize(
    "text",
    [
        "Who was Abraham Lincoln?",
        "What causes the summer monsoon rains in South Asia?",
        "Why can camels survive for long without water?",
        "What is this disease called when the skin turns yellow?",
        "Name a country that people visit for its beaches.",
        "What is an array in Python?",
    ],
)
def test_request_problem_keeps(text: str) -> None:
    """Self-contained questions pass, including ones that say `this` or `that` about no input."""
    assert request_problem(text, extractive=True) is None


@pytest.mark.parametrize(
    "text",
    [
        "Write a short paragraph about why you should not have both a pet cat and a pet bird.",
        "Give me a list of some characteristics of a good coffee shop?",
        "Suggest some games that can be played by a group of people.",
        "Identify which instrument is string or percussion: Cantaro, Gudok",
        "What is your favorite strip from the comic Calvin and Hobbes?",
        "If you could help me write an email to my friends inviting them to dinner on Friday, it would be great.",
    ],
)
def test_writing_tasks_are_not_extractive(text: str) -> None:
    """Where answers are excerpts, requests for new writing, opinions or choices are refused."""
    problem = request_problem(text, extractive=True)
    assert problem is not None and problem[0] in {"not_extractive", "needs_input"}
    assert request_problem(text, extractive=False) is None or problem[0] == "needs_input"


def test_query_carrying_its_input_is_not_needs_input() -> None:
    """A query whose input follows its request (a second paragraph) carries it: the genericizer can slot it."""
    query = "Summarize the following paragraph.\n\nThe Nile is the longest river in Africa."
    assert query_problem(query) is None
    assert query_problem("Summarize the following paragraph.") == (
        "needs_input",
        "'the following' in 'Summarize the following paragraph.'",
    )


def test_a_statement_is_not_a_request() -> None:
    """Labeled junk: `Bitcoin (i.e. money printing)` asks nothing; `What is Cricket` (no mark) still asks."""
    from fi_spark.text.instructions import not_a_request

    assert request_problem("Bitcoin (i.e. money printing)", extractive=True)[0] == "not_a_request"  # type: ignore[index]
    assert not_a_request("What is Cricket") is None and not_a_request("Tell me about Kenya.") is None
