"""Judge prompt building and verdict parsing (fi_spark.generate.judge)."""

from __future__ import annotations

import json

import pytest

from fi_spark.config import load_prompt
from fi_spark.generate.judge import (
    JudgeVerdict,
    build_messages,
    check_prompt,
    parse_verdict,
    rescale,
    verdict_schema,
)

SOURCE = "Ada Lovelace wrote notes on the Analytical Engine in 1843."


def test_shipped_prompt_renders_scale_rubric_and_pair():
    """judge.v1 renders system, two examples and the request with the configured scale."""
    spec = load_prompt("judge.v1")
    check_prompt(spec)
    msgs = build_messages(spec, "When did Lovelace write notes?", "In 1843.", SOURCE, (1, 5), 3000)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    last = msgs[-1]["content"]
    assert "from 1 (worst) to 5 (best)" in last and "about 3 when" in last
    assert "INSTRUCTION: When did Lovelace write notes?" in last and "ANSWER: In 1843." in last and SOURCE in last
    assert [json.loads(msgs[i]["content"])["score"] for i in (2, 4)] == [5, 1]


def test_examples_are_rescaled_to_another_scale():
    """On a 0-10 scale the examples' 5 and 1 (written for 1-5) become 10 and 0, and the rubric says 0..10."""
    spec = load_prompt("judge.v1")
    msgs = build_messages(spec, "q", "a", SOURCE, (0, 10), 3000)
    assert [json.loads(msgs[i]["content"])["score"] for i in (2, 4)] == [10, 0]
    assert all("from 0 (worst) to 10 (best)" in msgs[i]["content"] for i in (1, 3, 5))


def test_rescale():
    """Linear rescaling maps ends to ends and rounds the middle."""
    assert rescale(3, (1, 5), (1, 10)) == 6  # 5.5 rounds to even
    assert rescale(1, (1, 5), (0, 100)) == 0 and rescale(5, (1, 5), (0, 100)) == 100


def test_schema_bounds_the_score():
    """The response schema carries the scale bounds and requires both fields."""
    schema = verdict_schema(1, 7)
    assert schema["properties"]["score"] == {"type": "integer", "minimum": 1, "maximum": 7}
    assert schema["required"] == ["rationale", "score"]
    assert verdict_schema(1, 5, 123)["properties"]["rationale"]["maxLength"] == 123


@pytest.mark.parametrize(
    ("parsed", "expected"),
    [
        ('{"rationale": " Fine. ", "score": 4}', JudgeVerdict(4, "Fine.")),
        ('{"rationale": "ok", "score": 5.0}', JudgeVerdict(5, "ok")),
        ('{"score": 1}', JudgeVerdict(1, "")),
    ],
)
def test_valid_verdicts(parsed, expected):
    """Scores within the scale parse; the rationale is stripped."""
    assert parse_verdict(parsed, (1, 5)) == expected


@pytest.mark.parametrize(
    ("parsed", "reason"),
    [
        (None, "judge_unparseable"),
        ("not json", "judge_unparseable"),
        ('{"rationale": "x"}', "judge_unparseable"),
        ('{"rationale": "x", "score": "4"}', "judge_unparseable"),
        ('{"rationale": "x", "score": true}', "judge_unparseable"),
        ('{"rationale": "x", "score": 6}', "judge_score_out_of_range"),
        ('{"rationale": "x", "score": 0}', "judge_score_out_of_range"),
        ('{"rationale": "x", "score": 3.5}', "judge_score_out_of_range"),
    ],
)
def test_bad_verdicts_have_reasons(parsed, reason):
    """Missing, non-numeric, fractional or out-of-scale scores give a reason instead of a score."""
    verdict = parse_verdict(parsed, (1, 5))
    assert verdict.score is None and verdict.reason == reason and verdict.detail


def test_rationale_is_cut():
    """Long rationales are cut to the configured length."""
    verdict = parse_verdict(json.dumps({"rationale": "x" * 1000, "score": 3}), (1, 5), max_rationale_chars=50)
    assert verdict.rationale == "x" * 50
