"""Genericize answers: the JSON schema the model must follow, and answer -> template fields.

The prompt text itself is a versioned file (conf/prompts/genericize.v1.yaml) in the project's one
prompt format (fi_spark.config.PromptSpec, loaded by fi_spark.config.load_prompt); `templates.prompt`
names which file a run uses, so a cluster can point at a dedicated genericizer's format without code
changes. The answer schema stays in code because validation and the `templates` table depend on its
field names; it is sent as structured output, and its `pattern` makes a constrained decoder emit at
least one `<fi>` slot (honoured by vLLM, see DESIGN.md).
"""

from __future__ import annotations

import json

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

    fields = {f for _, f, _, _ in Formatter().parse(spec.user) if f}
    if fields != {"query"}:
        raise ConfigError(f"prompt {spec.path or spec.name}: `user` must use exactly {{query}}, found {sorted(fields)}")
    for i, ex in enumerate(spec.examples):
        if set(ex.input) != {"query"} or set(ex.output) != set(GenericizeAnswer.model_fields):
            raise ConfigError(
                f"prompt {spec.path or spec.name}: example {i} needs input.query and output "
                f"{sorted(GenericizeAnswer.model_fields)}"
            )


def parse_answer(parsed_json: str | None) -> tuple[str | None, str | None, str | None]:
    """A schema-valid answer (JSON text from the LLM layer) -> (template, description, problem).

    The LLM layer already validated the JSON against the schema; this still guards against an
    answer of another shape (another prompt's schema, a bank row) and returns a problem instead
    of raising.
    """
    if parsed_json is None:
        return None, None, "no answer"
    try:
        obj = json.loads(parsed_json)
    except (TypeError, ValueError) as exc:
        return None, None, f"answer is not JSON: {exc}"
    if not isinstance(obj, dict):
        return None, None, f"answer is a {type(obj).__name__}, not an object"
    template = obj.get("template")
    description = obj.get("compatible_document_description")
    if not isinstance(template, str):
        return None, None, "answer has no string 'template'"
    return template, description if isinstance(description, str) else None, None
