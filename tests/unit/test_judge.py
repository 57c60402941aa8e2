"""Judge prompt building and verdict parsing (fi_spark.judge.rubric)."""

from __future__ import annotations

import json
import math

import pytest

from fi_spark.config import load_prompt
from fi_spark.judge.rubric import (
    JudgeVerdict,
    build_messages,
    check_prompt,
    expected_score,
    parse_verdict,
    rescale,
    response_schema,
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
        ('{"score": 1}', JudgeVerdict(1, None)),
        ("4", JudgeVerdict(4, None)),
        (" 2 ", JudgeVerdict(2, None)),
    ],
)
def test_valid_verdicts(parsed, expected):
    """Scores within the scale parse, bare or in an object; the rationale is stripped, None when not asked."""
    assert parse_verdict(parsed, None, (1, 5)) == expected


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
        ("7", "judge_score_out_of_range"),
        ('"4"', "judge_unparseable"),
        ("Score: 4", "judge_unparseable"),
    ],
)
def test_bad_verdicts_have_reasons(parsed, reason):
    """Missing, non-numeric, fractional or out-of-scale scores give a reason instead of a score."""
    verdict = parse_verdict(parsed, '{"4": -0.1}', (1, 5))
    assert verdict.expected_score is None and verdict.score is None and verdict.reason == reason and verdict.detail


def test_rationale_is_cut():
    """Long rationales are cut to the configured length."""
    verdict = parse_verdict(json.dumps({"rationale": "x" * 1000, "score": 3}), None, (1, 5), max_rationale_chars=50)
    assert verdict.rationale == "x" * 50


def test_v2_prompt_asks_for_the_score_alone_by_default():
    """judge.v2 renders the 5-point rubric; without a rationale the examples answer with the bare score."""
    spec = load_prompt("judge.v2")
    check_prompt(spec)
    msgs = build_messages(spec, "When did Lovelace write notes?", "In 1843.", SOURCE, (1, 5), 3000, rationale=False)
    assert [m["content"] for m in msgs if m["role"] == "assistant"] == ["5", "3", "1"]
    last = msgs[-1]["content"]
    assert "- 4: Good." in last and "Reply with the score only: one integer from 1 to 5" in last
    assert "INSTRUCTION: When did Lovelace write notes?" in last and SOURCE in last


def test_v2_prompt_with_rationale_keeps_the_old_answer_shape():
    """With a rationale the examples are the rationale-first JSON and the request asks for it."""
    msgs = build_messages(load_prompt("judge.v2"), "q", "a", SOURCE, (1, 5), 3000, rationale=True)
    shown = [json.loads(m["content"]) for m in msgs if m["role"] == "assistant"]
    assert [list(s) for s in shown] == [["rationale", "score"]] * 3 and shown[1]["score"] == 3
    assert '"rationale": "<one to three sentences>"' in msgs[-1]["content"]


def test_response_schema_is_a_score_choice_or_the_rationale_object():
    """Off: an integer enum over the scale (one token); on: the bounded rationale-first object."""
    assert response_schema((1, 5), rationale=False) == {"type": "integer", "enum": [1, 2, 3, 4, 5]}
    assert response_schema((1, 5), rationale=True, max_rationale_chars=80) == verdict_schema(1, 5, 80)


LN = math.log


@pytest.mark.parametrize(
    ("logprobs", "expected"),
    [
        # one position's map (first token): 0.6 x 4 + 0.3 x 5 + 0.1 x 3, nothing to renormalize
        (json.dumps({"4": LN(0.6), "5": LN(0.3), "3": LN(0.1)}), 4.2),
        # non-score alternatives are dropped and the rest renormalized: (0.4 x 5 + 0.4 x 1) / 0.8
        (json.dumps({"5": LN(0.4), "1": LN(0.4), "The": LN(0.2)}), 3.0),
        # "4" and " 4" are the same score; "9" is outside the scale
        (json.dumps({" 4": LN(0.25), "4": LN(0.25), "2": LN(0.5), "9": LN(0.1)}), 3.0),
        # the adapter's per-token list, one-token answer
        (json.dumps([["2", {"2": LN(0.5), "1": LN(0.5)}]]), 1.5),
        # JSON answer: the digit is the fourth token, after `"score":`
        (
            json.dumps(
                [
                    ['{"', {'{"': 0.0}],
                    ["score", {"score": 0.0}],
                    ['":', {'":': 0.0}],
                    [" 3", {" 3": LN(0.5), " 5": LN(0.5)}],
                    ["}", {"}": 0.0}],
                ]
            ),
            4.0,
        ),
        # rationale first: a digit inside the rationale is not the score
        (
            json.dumps(
                [
                    ['{"rationale":"', {}],
                    ["Has 2", {"Has 2": 0.0, "1": LN(0.9)}],
                    ['","score":', {}],
                    ["5", {"5": LN(0.75), "4": LN(0.25)}],
                    ["}", {}],
                ]
            ),
            4.75,
        ),
        # a digit fused with punctuation into one token: its alternatives are no score tokens
        (json.dumps([['{"score', {}], ['":4', {'":4': LN(0.5), '":2': LN(0.5)}], ["}", {}]]), None),
        (json.dumps({"The": -0.1, "A": -2.0}), None),  # no score token among the alternatives
        (None, None),
        ("not json", None),
        ("[]", None),
    ],
)
def test_expected_score(logprobs, expected):
    """Sum of score x probability over the score alternatives, renormalized; None when none are present."""
    got = expected_score(logprobs, (1, 5))
    assert (got is None and expected is None) or got == pytest.approx(expected)


def test_verdict_carries_the_expected_score():
    """A usable score keeps the expected score from its logprobs."""
    verdict = parse_verdict("4", json.dumps([["4", {"4": LN(0.5), "5": LN(0.5)}]]), (1, 5))
    assert verdict.score == 4 and verdict.expected_score == pytest.approx(4.5)
