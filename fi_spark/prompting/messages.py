"""Chat messages from a versioned prompt file (fi_spark.config.PromptSpec), shared by instantiate and judge.

A prompt is a system text, a `str.format` user template and few-shot examples; examples become
user/assistant turns before the real request, their assistant turn being the example's JSON output.
Only the user template is formatted, so the system text may show JSON with literal braces. Messages are
plain dicts, the shape `fi_spark.llm.complete` takes (as a JSON string in the `messages` column).
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Mapping
from typing import Any

from fi_spark.prompting.spec import PromptSpec
from fi_spark.section import ConfigError


def placeholders(template: str) -> set[str]:
    """Names used as `{name}` in a format string."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def check_placeholders(spec: PromptSpec, provided: set[str]) -> None:
    """Fail at load time, naming the file, when the user template asks for a value the stage does not give."""
    unknown = placeholders(spec.user) - provided
    if unknown:
        raise ConfigError(
            f"prompt {spec.path or spec.name}: unknown placeholder(s) {sorted(unknown)} in `user`; "
            f"this stage provides {sorted(provided)} (write literal braces as {{{{ and }}}})"
        )


def cut_text(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars`, at the last whitespace when one is near, so no word is split."""
    text = text or ""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    space = head.rfind(" ", int(max_chars * 0.8))
    return head[:space] if space > 0 else head


def chat_messages(
    spec: PromptSpec,
    values: Mapping[str, Any],
    example_hook: Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> list[dict[str, str]]:
    """System turn, one user/assistant pair per example, then the request formatted with `values`.

    `example_hook(input, output)` may derive values for an example (e.g. the slot list of its template)
    or adjust its output (e.g. rescale a score); it returns (format values, output object).
    """
    messages: list[dict[str, str]] = []
    if spec.system.strip():
        messages.append({"role": "system", "content": spec.system.strip()})
    for example in spec.examples:
        ex_values, ex_output = dict(example.input), dict(example.output)
        if example_hook is not None:
            ex_values, ex_output = example_hook(ex_values, ex_output)
        messages.append({"role": "user", "content": spec.user.format(**ex_values).strip()})
        messages.append({"role": "assistant", "content": json.dumps(ex_output, ensure_ascii=False)})
    messages.append({"role": "user", "content": spec.user.format(**values).strip()})
    return messages


def loads_object(parsed: str | None) -> dict[str, Any] | None:
    """The JSON object in `parsed` (the LLM layer's canonical JSON), or None when absent or not an object."""
    if not parsed:
        return None
    try:
        value = json.loads(parsed)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
