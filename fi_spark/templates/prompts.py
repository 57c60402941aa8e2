"""Genericize answers: the JSON schema the model must follow, and answer -> template fields.

The prompt text itself is a versioned file (conf/prompts/genericize.v1.yaml) in the project's one
prompt format (fi_spark.config.PromptSpec, loaded by fi_spark.config.load_prompt); `templates.prompt`
names which file a run uses, so a cluster can point at a dedicated genericizer's format without code
changes. `genericize.fineinstructions` speaks the released query_templatizer's contract (the bare query
as the only user message, JSON out, no schema sent: fi_spark.generate.fineinstructions).
The answer schema stays in code because validation and the `templates` table depend on its field names;
it is sent as structured output, and its `pattern` makes a constrained decoder emit at least one `<fi>` slot
(honoured by vLLM, see DESIGN.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from fi_spark.prompt_spec import PromptSpec
from fi_spark.section import ConfigError

# The pattern bounds every part of the template (text before the first slot, each slot, text after it, up to
# 4 slots), because small models loop inside an unbounded string. Measured on the local SmolLM2-135M vLLM CPU
# server (40 real queries, greedy): unbounded `[^<]*` truncated 15 of 16 answers at max_tokens; these bounds
# gave 12/16 and 14/24 valid templates. vLLM's grammar compiler is picky about bounded regexes: with a
# maxLength next to the pattern it answers HTTP 400 ("Unable to determine if regex is empty"), and with wider
# bounds ({0,160} / {1,80} / {0,120} / {1,5}) HTTP 500 -- change these numbers only after trying them there.
# The description gets plain length bounds, which it accepts.
SLOT_PATTERN = r"^[^<]{0,120}(<fi>[^<]{1,60}</fi>[^<]{0,80}){1,4}$"


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
    for i, ex in enumerate(spec.examples):
        if set(ex.input) != {"query"} or set(ex.output) != set(GenericizeAnswer.model_fields):
            raise ConfigError(
                f"prompt {spec.path or spec.name}: example {i} needs input.query and output "
                f"{sorted(GenericizeAnswer.model_fields)}"
            )


def genericize_schema(spec: PromptSpec) -> type[GenericizeAnswer] | None:
    """The response schema to send with `spec`: ours, or none for the released templatizer (its own JSON)."""
    return None if spec.prompt_format == "fineinstructions" else GenericizeAnswer


def parse_answer(parsed_json: str | None) -> tuple[str | None, str | None, str | None]:
    """An answer (schema-valid JSON, or a released model's raw text) -> (template, description, problem).

    The LLM layer already validated our JSON against the schema; this still guards against an
    answer of another shape (another prompt's schema, a bank row) and returns a problem instead
    of raising. Raw text may wrap the JSON object in a ```json fence or in words around it.
    """
    from fi_spark.generate.fineinstructions import loads_lenient

    if parsed_json is None:
        return None, None, "no answer"
    obj = loads_lenient(parsed_json)
    if obj is ...:
        return None, None, f"answer is not JSON: {parsed_json!r:.120}"
    if not isinstance(obj, dict):
        return None, None, f"answer is a {type(obj).__name__}, not an object"
    template = obj.get("template")
    description = obj.get("compatible_document_description")
    if not isinstance(template, str):
        return None, None, "answer has no string 'template'"
    return template, description if isinstance(description, str) else None, None
