"""Genericize answers: the JSON schema the model must follow, and answer -> template fields.

The prompt text itself is a versioned file (conf/prompts/genericize.v1.yaml) in the project's one
prompt format (fi_spark.config.PromptSpec, loaded by fi_spark.config.load_prompt); `templates.prompt`
names which file a run uses, so a cluster can point at a dedicated genericizer's format without code
changes. `genericize.fineinstructions` speaks the released query_templatizer's contract (the bare query
as the only user message, JSON out, no schema sent: fi_spark.prompting.fineinstructions).
The answer schema stays in code because validation and the `templates` table depend on its field names;
it is sent as structured output, and its `pattern` makes a constrained decoder emit at least one `<fi>` slot
(honoured by vLLM, see DESIGN.md).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from fi_spark.prompting.spec import PromptSpec
from fi_spark.section import ConfigError

# The pattern bounds every part of the template (text before the first slot, each slot, text after it, up to
# 4 slots), because small models loop inside an unbounded string. Measured on the local SmolLM2-135M vLLM CPU
# server (40 real queries, greedy): unbounded `[^<]*` truncated 15 of 16 answers at max_tokens; these bounds
# gave 12/16 and 14/24 valid templates. vLLM's grammar compiler is picky about bounded regexes: with a
# maxLength next to the pattern it answers HTTP 400 ("Unable to determine if regex is empty"), and with wider
# bounds ({0,160} / {1,80} / {0,120} / {1,5}) HTTP 500 -- change these numbers only after trying them there.
# The description gets plain length bounds, which it accepts.
SLOT_PATTERN = r"^[^<]{0,120}(<fi>[^<]{1,60}</fi>[^<]{0,80}){1,4}$"


FROM_QUERY_REASONS = ("slot_not_in_query", "slot_overlap")


class QuerySlot(BaseModel):
    """One span of the query to turn into a slot: the words as written in the query, and what they stand for."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=60)
    description: str = Field(min_length=3, max_length=60)


class QuerySlotsAnswer(BaseModel):
    """`template_style: from_query` (genericize.v2): the model names the query's spans to slot; the template is
    built from the query itself (`template_from_query`), so it can only be the query's own words with some
    spans replaced -- right by construction, where a small model asked to write the template copied the
    query, wrote on past it, or glued slots into words (issue #18: 77 of 160 sample templates lost)."""

    model_config = ConfigDict(extra="forbid")

    slots: list[QuerySlot] = Field(min_length=1, max_length=4)
    compatible_document_description: str = Field(min_length=20, max_length=300)


def template_from_query(query: str, slots: list[dict[str, str]]) -> tuple[str | None, str | None]:
    """The query with each slot's `text` (found as whole words, any case) replaced by `<fi>description</fi>`.

    Returns (template, None) or (None, problem), the problem opening with its reject reason (one of
    FROM_QUERY_REASONS): a span not in the query, or spans that overlap."""
    spans: list[tuple[int, int, str]] = []
    for slot in slots:
        text, description = str(slot.get("text", "")).strip(), " ".join(str(slot.get("description", "")).split())
        found = _find_span(query, text) if text else None
        if found is None:
            return None, f"slot_not_in_query: slot text {text!r} is not words of the query"
        if any(found.start() < end and start < found.end() for start, end, _ in spans):
            return None, f"slot_overlap: slot text {text!r} overlaps another slot"
        spans.append((found.start(), found.end(), description))
    out, pos = [], 0
    for start, end, description in sorted(spans):
        out.append(f"{query[pos:start]}<fi>{description}</fi>")
        pos = end
    return "".join(out) + query[pos:], None


_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)


def _find_span(query: str, text: str) -> re.Match[str] | None:
    """Where `text` occurs in `query` as whole words, any case; a small model's near-copies are accepted too:
    a leading article the query does not have (`a tteokbokki`), a plural or singular ending (`bear`/`bears`)."""
    for candidate in dict.fromkeys((text, _ARTICLE.sub("", text))):
        words = [re.escape(w.rstrip("s")) + r"(?:s|es)?" if len(w) > 3 else re.escape(w) for w in candidate.split()]
        found = re.search(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", query, re.IGNORECASE) if words else None
        if found:
            return found
    return None


class GenericizeAnswer(BaseModel):
    """What the genericizer returns for one query."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(pattern=SLOT_PATTERN)
    compatible_document_description: str = Field(min_length=20, max_length=300)


def check_genericize_prompt(spec: PromptSpec) -> None:
    """A genericize prompt formats only `{query}`; its examples must carry the answer's two fields."""
    from string import Formatter

    if spec.prompt_format == "fineinstructions" and (
        spec.system.strip() or spec.examples or spec.user.strip() != "{query}"
    ):
        raise ConfigError(
            f"prompt {spec.path or spec.name}: prompt_format fineinstructions sends the bare query: "
            "`user` must be exactly {query}, with no system text and no examples"
        )
    fields = {f for _, f, _, _ in Formatter().parse(spec.user) if f}
    if fields != {"query"}:
        raise ConfigError(f"prompt {spec.path or spec.name}: `user` must use exactly {{query}}, found {sorted(fields)}")
    answer = QuerySlotsAnswer if spec.template_style == "from_query" else GenericizeAnswer
    for i, ex in enumerate(spec.examples):
        if set(ex.input) != {"query"} or set(ex.output) != set(answer.model_fields):
            raise ConfigError(
                f"prompt {spec.path or spec.name}: example {i} needs input.query and output "
                f"{sorted(answer.model_fields)}"
            )
        if answer is QuerySlotsAnswer:
            _, problem = template_from_query(ex.input["query"], ex.output["slots"])
            if problem:
                raise ConfigError(f"prompt {spec.path or spec.name}: example {i}: {problem}")


def genericize_schema(spec: PromptSpec) -> type[BaseModel] | None:
    """The response schema to send with `spec`: ours, or none for the released templatizer (its own JSON)."""
    if spec.prompt_format == "fineinstructions":
        return None
    return QuerySlotsAnswer if spec.template_style == "from_query" else GenericizeAnswer


def parse_answer(parsed_json: str | None, query: str | None = None) -> tuple[str | None, str | None, str | None]:
    """An answer (schema-valid JSON, or a released model's raw text) -> (template, description, problem).

    The LLM layer already validated our JSON against the schema; this still guards against an
    answer of another shape (another prompt's schema, a bank row) and returns a problem instead
    of raising. Raw text may wrap the JSON object in a ```json fence or in words around it.
    """
    from fi_spark.prompting.fineinstructions import loads_lenient

    if parsed_json is None:
        return None, None, "no answer"
    obj = loads_lenient(parsed_json)
    if obj is ...:
        return None, None, f"answer is not JSON: {parsed_json!r:.120}"
    if not isinstance(obj, dict):
        return None, None, f"answer is a {type(obj).__name__}, not an object"
    description = obj.get("compatible_document_description")
    if query is not None and isinstance(obj.get("slots"), list) and "template" not in obj:  # from_query answers
        template, problem = template_from_query(query, [s for s in obj["slots"] if isinstance(s, dict)])
        return template, description if isinstance(description, str) else None, problem
    template = obj.get("template")
    if not isinstance(template, str):
        return None, None, "answer has no string 'template'"
    return template, description if isinstance(description, str) else None, None
