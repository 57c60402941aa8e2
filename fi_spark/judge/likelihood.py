"""The likelihood judge (`judge_style: likelihood`): does the instruction make its answer more likely?

A small local model cannot grade a pair on a rubric: measured on the bundled sample (bench/judge_scores.py
--compare, SmolLM2-135M), the rubric token ranks real pairs below mismatched ones (AUC 0.37 on instantiated
pairs) and yes/no questions barely beat chance (0.52-0.57). What such a model can do is predict text. The
lift is the mean log-probability per token of the answer after the pair's instruction, minus the same after
a neutral request (`neutral`, e.g. "Say something."): an answer that responds to its instruction becomes
more likely once the instruction is read; a mismatched one does not (AUC 0.86 on the same pairs).

Each pair costs two scoring requests and no generated text: the answer is sent as the final assistant
message and the server returns the logprob of every prompt token (fi_spark.llm.adapter, vLLM's
`prompt_logprobs` with `continue_final_message`). The answer's tokens are the prompt's last tokens whose
decoded text covers the answer (compared without whitespace, so no tokenizer is needed here); the
neutral request of an answer is the same for every pair that shares it, so it is answered once.

The lift is mapped onto the judge's integer scale by the prompt file's `lift_edges` (ascending, in
nats per token): score = scale_min + the number of edges at or below the lift, so with 4 edges on 1-5 a
lift at or above the third edge scores 4 (kept by the default threshold). `expected_score` interpolates
linearly between the edges, so pairs can be ranked and re-thresholded finely.

This judge measures relevance only -- that the answer responds to the instruction. Faithfulness comes
from the answer contracts it is meant for (instantiate.v2 excerpts, v3 sentences: answers are verbatim
spans, checked for grounding before judging). Pure Python.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right

from fi_spark.judge.rubric import JudgeVerdict

ROLES = ("cond", "free")  # the two scoring requests of a pair: after the instruction, after the neutral request
_SPACE = re.compile(r"\s+")


def scoring_messages(request: str, answer: str, system: str = "") -> list[dict[str, str]]:
    """The messages whose final (assistant) message is scored: [system], the request, the answer."""
    head = [{"role": "system", "content": system}] if system.strip() else []
    return [*head, {"role": "user", "content": request}, {"role": "assistant", "content": answer}]


def answer_logprob(logprobs: str | None, answer: str) -> tuple[float, int] | None:
    """(mean logprob, tokens) of the prompt's last tokens that spell `answer`, or None when they cannot.

    `logprobs` is the adapter's `[[decoded_token, logprob], ...]` of the prompt's tail. Tokens are taken from
    the end until their text (whitespace removed) is as long as the answer's; a server that continues the final
    message adds nothing after it.
    """
    try:
        entries = json.loads(logprobs) if logprobs else None
    except ValueError:
        return None
    need = len(_SPACE.sub("", answer))
    if not isinstance(entries, list) or not need:
        return None
    have, values = 0, []
    for entry in reversed(entries):
        if have >= need:
            break
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], (int, float))):
            return None
        have += len(_SPACE.sub("", str(entry[0])))
        values.append(float(entry[1]))
    if have < need:  # the kept tail is shorter than the answer: score what there is
        return (sum(values) / len(values), len(values)) if values else None
    return sum(values) / len(values), len(values)


def lift_verdict(
    cond: str | None, free: str | None, answer: str, edges: list[float], scale: tuple[int, int]
) -> JudgeVerdict:
    """The verdict of one pair from its two scoring answers' logprobs (see the module docstring)."""
    with_instruction, neutral = answer_logprob(cond, answer), answer_logprob(free, answer)
    if with_instruction is None or neutral is None:
        which = "the instruction's" if with_instruction is None else "the neutral request's"
        return JudgeVerdict(None, None, "judge_unparseable", f"no answer-token logprobs in {which} scoring answer")
    lift = with_instruction[0] - neutral[0]
    score = min(scale[1], scale[0] + bisect_right(edges, lift))
    detail = f"lift {lift:+.3f} nats/token over {with_instruction[1]} tokens"
    return JudgeVerdict(score, detail, None, None, expected_lift_score(lift, edges, scale))


def expected_lift_score(lift: float, edges: list[float], scale: tuple[int, int]) -> float:
    """A continuous score: scale_min below the first edge, then linear between edges (edge i -> scale_min+i+1)."""
    low, high = scale
    if not edges or lift < edges[0]:
        return float(low)
    for i in range(len(edges) - 1):
        if lift < edges[i + 1]:
            return min(high, low + i + 1 + (lift - edges[i]) / (edges[i + 1] - edges[i]))
    return float(min(high, low + len(edges)))
