"""Scripted model behaviour of the fault server (fi_spark_testkit.fault_server): deterministic, explainable, no
weights."""

from __future__ import annotations

from typing import Any


def prompt_logprobs(messages: list[dict[str, Any]]) -> list[Any]:
    """vLLM-shaped prompt logprobs of a scripted model whose tokens are words: a word already seen in a user
    message costs -1.0, any other -2.0 (so an answer sharing words with its instruction has a positive lift)."""
    seen: set[str] = set()
    out: list[Any] = []
    for m in messages:
        words = str(m.get("content", "")).split()
        out += [{"1": {"logprob": -1.0 if w.casefold() in seen else -2.0, "rank": 1, "decoded_token": f" {w}"}}
                for w in words]  # fmt: skip
        if m.get("role") == "user":
            seen |= {w.casefold() for w in words}
    return [None, *out[1:]] if out else out  # the first token has no logprob
