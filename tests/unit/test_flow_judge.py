"""Flow Judge's contract (`prompt_format: flow-judge`, conf/prompts/judge.flow.yaml): its template in, feedback out."""

from __future__ import annotations

import json
import math

import pytest

from fi_spark.config import ConfigError, load_prompt
from fi_spark.judge import rubric as gen
from fi_spark.judge.flow_judge import check_prompt, parse_flow_output

SCALE = (1, 5)


def test_the_prompt_is_flow_judges_published_template_with_the_pair():
    """One user turn, no system: Flow Judge's sections and format lines, the pair in its <inputs>/<output> blocks."""
    spec = load_prompt("judge.flow")
    gen.check_prompt(spec)
    messages = gen.judge_messages(spec, "What is X?", "X is a letter.", "X is the 24th letter.", SCALE, 3000, False)
    assert [m["role"] for m in messages] == ["user"]
    text = messages[0]["content"]
    assert text.startswith("# GOAL\nYour job is to evaluate a task carried out by an AI system powered by a large")
    assert (
        "<inputs>\n<document>\nX is the 24th letter.\n</document>\n<instruction>\nWhat is X?\n</instruction>\n</inputs>"
        in text
    )
    assert "<output>\n<answer>\nX is a letter.\n</answer>\n</output>" in text
    assert "- Score 1: Unusable." in text and "- Score 5: Excellent." in text
    assert "- Write the verbal feedback inside <feedback> tags without any additional surrounding text." in text
    assert text.endswith("Please accurately evaluate the task. Strictly adhere to the evaluation criteria and rubric.")
    schema, max_tokens = gen.request_shape(spec, SCALE, False, 600, 1024)
    assert (schema, max_tokens) == (None, 1024)  # free text: no schema, the stage's own max_tokens


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("<feedback>\nClear and faithful.\n</feedback>\n<score>\n4\n</score>", (4, "Clear and faithful.", None)),
        ("<feedback>ok</feedback><score>5</score> trailing words", (5, "ok", None)),
        ("<score>2</score>", (2, "", None)),  # no feedback: the score still counts
        ("<feedback>long rambling</feedback> and then nothing", (None, "long rambling", "judge_unparseable")),
        ("I think it is a 4.", (None, None, "judge_unparseable")),
        ("", (None, None, "judge_unparseable")),
        (None, (None, None, "judge_unparseable")),
        ("<feedback>great</feedback><score>7</score>", (None, "great", "judge_score_out_of_range")),
        ("<feedback>x</feedback><score>3.5</score>", (None, "x", "judge_score_out_of_range")),
    ],
)
def test_garbled_output_is_a_reason_never_a_crash(content, expected):
    """Flow Judge's parser rules: first <feedback>, first <score>; anything else is a reject reason."""
    score, feedback, reason, _detail = parse_flow_output(content, SCALE, 600)
    assert (score, feedback, reason) == expected


def test_the_verdict_keeps_feedback_as_rationale_and_reads_the_expected_score_at_the_score_tag():
    """judge_verdict on a Flow answer: the digit after <score> (not one inside the feedback) carries the logprobs."""
    spec = load_prompt("judge.flow")
    content = "<feedback>Has 2 flaws.</feedback>\n<score>4</score>"
    logprobs = json.dumps([["<feedback>", {}], ["Has ", {}], ["2", {"2": 0.0}], [" flaws.</feedback>\n<score>", {}],
                           ["4", {"4": math.log(0.5), "5": math.log(0.5)}], ["</score>", {}]])  # fmt: skip
    verdict = gen.judge_verdict(spec, content, logprobs, SCALE, 600)
    assert (verdict.score, verdict.rationale, verdict.reason, verdict.expected_score) == (4, "Has 2 flaws.", None, 4.5)
    bad = gen.judge_verdict(spec, "no tags at all", logprobs, SCALE, 600)
    assert (bad.score, bad.reason, bad.expected_score) == (None, "judge_unparseable", None)


def test_a_flow_prompt_with_a_system_turn_or_other_placeholders_is_refused():
    """Flow Judge was trained on one user turn: a system turn or an unknown placeholder fails at load."""
    spec = load_prompt("judge.flow")
    with pytest.raises(ConfigError, match="without a system turn"):
        check_prompt(spec.model_copy(update={"system": "You are a judge."}))
    with pytest.raises(ConfigError, match="must use exactly"):
        check_prompt(spec.model_copy(update={"user": spec.user + " {scale_max}"}))
