"""Flow Judge's own contract (`prompt_format: flow-judge`): its published prompt in, `<feedback>` + `<score>` out.

The paper judged its pairs with Flow Judge (`flowaicom/Flow-Judge-v0.1`, Apache-2.0) on a 1-5 Likert scale and
kept score >= 4. Flow Judge was trained on one user-turn template (no system turn, no examples), published in
its library (flowaicom/flow-judge, `flow_judge/utils/prompt_formatter.py` and
`flow_judge/metrics/_data/prompts/standard.j2`): `# GOAL`, the task's inputs inside `<inputs>` (each input a
`<name>...</name>` block), the output inside `<output>`, `<evaluation_criteria>`, `<scoring_rubric>` (lines
`- Score N: ...`, lowest first), the numbered instructions, and the format: the feedback inside `<feedback>`
tags, then the score inside `<score>` tags. conf/prompts/judge.flow.yaml holds that template with the recipe's
criteria and rubric filled in, and the placeholders {document}, {instruction}, {answer}.

Reading an answer (`parse_flow_output`) follows Flow Judge's own parser (`EvalOutput.parse`: the first
`<feedback>` block and the first `<score>` digits); anything else is a reason, never an exception:
no `<score>` -> judge_unparseable, a score off the scale -> judge_score_out_of_range. A missing `<feedback>`
keeps the score (the feedback is an audit aid) with an empty rationale. The feedback is stored as the
verdict's rationale; with logprobs the expected score is read at the digit after `<score>`
(fi_spark.judge.rubric.expected_score). Pure Python.
"""

from __future__ import annotations

import re

from fi_spark.prompting.messages import cut_text, placeholders
from fi_spark.prompting.spec import PromptSpec
from fi_spark.section import ConfigError

PLACEHOLDERS = {"document", "instruction", "answer"}
_FEEDBACK = re.compile(r"<feedback>\s*(.*?)\s*</feedback>", re.DOTALL)
_SCORE = re.compile(r"<score>\s*(-?\d+(?:\.\d+)?)\s*</score>", re.DOTALL)


def check_prompt(spec: PromptSpec) -> None:
    """A flow-judge prompt is one user turn holding the rubric and the three placeholders, nothing else."""
    found = placeholders(spec.user)
    problems = []
    if found != PLACEHOLDERS:
        problems.append(
            f"its user template must use exactly {{{'}, {'.join(sorted(PLACEHOLDERS))}}}, not {sorted(found)}"
        )
    if spec.system.strip() or spec.examples:
        problems.append("Flow Judge was trained without a system turn or examples: leave `system` and `examples` out")
    if "<feedback>" not in spec.user or "<score>" not in spec.user:
        problems.append("its template must ask for <feedback> and <score> tags")
    if problems:
        raise ConfigError(f"prompt {spec.path or spec.name}: prompt_format flow-judge: {'; '.join(problems)}")


def flow_messages(
    spec: PromptSpec, instruction: str, answer: str, source_text: str, max_chars: int
) -> list[dict[str, str]]:
    """The one user message Flow Judge reads: the template with the pair and its (cut) source filled in."""
    values = {"document": cut_text(source_text, max_chars), "instruction": instruction, "answer": answer}
    return [{"role": "user", "content": spec.user.format(**values)}]


def parse_flow_output(
    content: str | None, scale: tuple[int, int], max_rationale_chars: int
) -> tuple[int | None, str | None, str | None, str | None]:
    """(score, feedback, reason, detail) of one raw Flow Judge answer; reason is None when the score is usable."""
    text = content or ""
    feedback_match = _FEEDBACK.search(text)
    feedback = feedback_match.group(1).strip()[:max_rationale_chars] if feedback_match else ""
    score_match = _SCORE.search(text)
    if score_match is None:
        return (
            None,
            feedback or None,
            "judge_unparseable",
            f"expected <feedback>...</feedback><score>N</score>: {text!r:.200}",
        )
    value = float(score_match.group(1))
    if value != int(value) or not scale[0] <= value <= scale[1]:
        return (
            None,
            feedback or None,
            "judge_score_out_of_range",
            f"score {score_match.group(1)} outside [{scale[0]}, {scale[1]}]",
        )
    return int(value), feedback, None, None
