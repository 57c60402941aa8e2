"""The released FineInstructions models' input/output contracts (`prompt_format: fineinstructions`).

Pure build/parse functions; a prompt file with `prompt_format: fineinstructions` (conf/prompts/
genericize.fineinstructions.yaml, instantiate.fineinstructions.yaml, named by conf/fineinstructions.yaml)
makes the genericize and instantiate code speak these contracts instead of our own prompts.

What was verified, and where (the weights and model cards are not reachable from this machine):

- `fineinstructions/query_templatizer` (Llama-3.2-1B): the bare query is the only user message, no
  system turn, no examples; it answers one JSON object with at least `template` and
  `compatible_document_description`. Source: the paper (arXiv 2601.22146) and a third-party
  reproduction's runbook that pins the artifacts ("render the bare query as the user message ...;
  require one parseable JSON object containing at least `template` and `compatible_document_description`").
- `fineinstructions/template_instantiator` (Llama-3.2-3B): the user content is the JSON object
  `{"instruction_template": ..., "document": ...}`; it may answer `null` when the template does not fit
  ("The instantiator may return `null` for incompatibility"), and its answer holds excerpt markers
  `<excerpt>prefix<...>suffix</excerpt>` expanded afterwards (same runbook, same paper).
- NOT verified: how the instantiator separates the instruction from the answer in its output. So
  :func:`parse_instantiator_output` accepts the shapes such a model plausibly emits, in this order: JSON
  `null` (or the bare word null); a JSON object with an instruction key (`instruction`,
  `instantiated_instruction`) and an answer key (`answer`, `response`, `output`); a JSON array of two
  strings; text with `Instruction:` / `Answer:` (or `Question:` / `Response:`) headings; otherwise the
  first paragraph is the instruction and the rest the answer. Check this against the model card before a
  large run; the scripted-server test (tests/unit/test_fineinstructions_format.py) pins each shape.

Order cost: the released instantiator's input puts the template before the document, so the ~6 templates
matched to one document do not share a long prompt prefix (our own format puts the document first for
vLLM's prefix cache); each of those requests pays the document's prefill again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

TEMPLATIZER = "fineinstructions/query_templatizer"
INSTANTIATOR = "fineinstructions/template_instantiator"
EMBEDDING = "fineinstructions/instruction_template_retrieval_embedding"
BANK = "fineinstructions/finetemplates"

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_HEADINGS = re.compile(  # "Instruction: ...\nAnswer: ...", also with markdown bold around the heading
    r"^\s*\**(?:instruction|question)\**\s*:\**\s*(?P<instruction>.*?)\n\s*\**(?:answer|response)\**\s*:\**\s*"
    r"(?P<answer>.*)$",
    re.DOTALL | re.IGNORECASE,
)
INSTRUCTION_KEYS = ("instruction", "instantiated_instruction")
ANSWER_KEYS = ("answer", "response", "output")


def templatizer_messages(query: str) -> list[dict[str, str]]:
    """The query_templatizer's input: the bare query as the only user message."""
    return [{"role": "user", "content": query}]


def instantiator_messages(template: str, shown: str) -> list[dict[str, str]]:
    """The template_instantiator's input: one user message whose content is the JSON object it was trained on."""
    content = json.dumps({"instruction_template": template, "document": shown}, ensure_ascii=False)
    return [{"role": "user", "content": content}]


def loads_lenient(text: str | None) -> Any:
    """JSON from a model's raw text: a fenced ```json block or the first {...} object; `...` on failure."""
    if text is None:
        return ...
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        return json.loads(body)
    except ValueError:
        pass
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(body[start : end + 1])
        except ValueError:
            pass
    return ...


def parse_templatizer_output(content: str | None) -> dict[str, Any] | None:
    """The templatizer's JSON object (template, compatible_document_description, ...), or None."""
    value = loads_lenient(content)
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class ReleasedAnswer:
    """One instantiator output: declined (`null`), or an instruction and an answer (markers unexpanded)."""

    declined: bool = False
    instruction: str | None = None
    answer: str | None = None
    problem: str | None = None


def parse_instantiator_output(content: str | None) -> ReleasedAnswer:
    """Read the instantiator's raw output in the shapes listed in the module docstring."""
    text = (content or "").strip()
    if not text:
        return ReleasedAnswer(problem="empty output")
    value = loads_lenient(text)
    if value is None or text.strip("`").strip().lower() == "null":
        return ReleasedAnswer(declined=True)
    if isinstance(value, dict):
        instruction = next((value[k] for k in INSTRUCTION_KEYS if isinstance(value.get(k), str)), None)
        answer = next((value[k] for k in ANSWER_KEYS if isinstance(value.get(k), str)), None)
        if instruction is None or answer is None:
            return ReleasedAnswer(problem=f"JSON object without instruction/answer: keys {sorted(value)[:8]}")
        return ReleasedAnswer(instruction=instruction, answer=answer)
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return ReleasedAnswer(instruction=value[0], answer=value[1])
    headed = _HEADINGS.match(text)
    if headed:
        return ReleasedAnswer(instruction=headed.group("instruction").strip(), answer=headed.group("answer").strip())
    head, sep, rest = text.partition("\n\n")
    if not sep or not rest.strip():
        return ReleasedAnswer(problem="expected an instruction, a blank line and an answer")
    return ReleasedAnswer(instruction=head.strip(), answer=rest.strip())
