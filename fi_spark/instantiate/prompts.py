"""Template instantiation: the prompt that fills a template from a source text, and the checks on the answer.

Consumes a template (`<fi>slot</fi>` text, fi_spark.text.tags), the text it matched (a chunk or a
region of a document) and the model's answer; produces an instruction, an answer, the slot values and
either a pass or one machine-readable reject reason with a detail that carries the measured value. Pure
Python: the instantiate stage runs `evaluate_instantiation` (fi_spark.instantiate.answer_checks) inside a Spark
task. This module holds the prompts and response schemas.

Four answer contracts, chosen by the prompt file (fi_spark.config.PromptSpec):

- ``answer_style: copied`` (instantiate.v1): JSON {slots, instruction, answer}, the answer copied verbatim.
- ``answer_style: excerpts`` (instantiate.v2, the default): JSON {compatible, slots, instruction, answer},
  the answer written with excerpt markers `<excerpt>first words<...>last words</excerpt>` plus a few
  connecting words, expanded by fi_spark.instantiate.excerpts against the shown text; `compatible: false`
  declines. The user turn puts the DOCUMENT before the template, so the templates matched to one document
  share one long prompt prefix (vLLM's automatic prefix caching reuses its KV cache).
- ``answer_style: sentences`` (instantiate.v3): the document is shown with numbered sentences
  (`[1] First. [2] Second.`, fi_spark.instantiate.excerpts.sentence_spans of the shown text); JSON
  {compatible, slots, instruction, first_sentence, last_sentence}. The answer is the shown text from the
  start of sentence `first_sentence` to the end of `last_sentence`, verbatim by construction (a small
  model can pick two numbers but cannot type resolvable markers). A number beyond the document's
  sentences or a reversed range -> ``excerpt_unresolved``. A range longer than `max_answer_chars` keeps
  fewer sentences (from `first_sentence` on, as many whole sentences as fit, at least one) rather than
  rejecting: the model pointed at where the answer starts, and a wide range is the common small-model
  slip (e.g. 1 to the last sentence), so cutting keeps a verbatim, usable answer.
- ``prompt_format: fineinstructions``: the released template_instantiator's own input and plain-text
  output (fi_spark.prompting.fineinstructions); `null` declines. No response schema is sent.

For small local models (the local profile, instantiate.v4-v6): ``instruction_style: filled`` -- the model gives
only slot values and the instruction is the template with them filled in (fi_spark.instantiate.pair_gates), so
it cannot be cut or drift; ``slot_choices`` -- each slot is shown with the document's phrases that fit it
(fi_spark.instantiate.slot_choices); ``decline: false`` -- no `compatible: false`, the checks decide. With
`instantiate.answer_span: best` the answer is the window of whole sentences the encoder finds closest to the
filled request (fi_spark.instantiate.relevance), checked there.

Checks, in order; the first failure is the reason (one reason per pair keeps row accounting exact):

======================  =================================================================================
``unparseable``         the answer is not an instruction and an answer (our JSON or a released shape)
``incompatible``        the model declined: the template does not fit the document (no judge call follows)
``empty_instruction``   the instruction is empty or whitespace
``unfilled_slots``      the instruction still holds a `<fi>` tag or a fragment of one
``excerpt_*``           a marker is malformed, ambiguous, unresolved or overlaps another (excerpts module)
``empty_answer``        the (expanded) answer has no word tokens
``answer_too_short``    fewer than `min_answer_tokens` word tokens
``ungrounded``          excerpt coverage (fi_spark.instantiate.grounding) of the expanded answer below
                        `min_grounding`
``slot_value_empty``,   the gates of fi_spark.text.instructions (`placeholder`, `needs_input`,
``instruction_*``, ...  `not_extractive`) and fi_spark.instantiate.pair_gates (slot values in the source, whole
                        sentences, slot and question coverage, answer type); REJECT_REASONS is the full
                        list in order, `slot_type_mismatch` and `off_topic` come from the encoder
======================  =================================================================================

Everything is measured against the shown text (`excerpts.shown_text`, the same cut the prompt used),
not the whole document: an excerpt from a part the model never saw cannot be a copy.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fi_spark.config.instantiate import InstantiateConfig
from fi_spark.instantiate import excerpts, slot_choices
from fi_spark.instantiate.answer_checks import (  # noqa: F401  re-exported: the stage and benches read them here
    SENTENCE_NUMBER,
    InstantiateRules,
    PairCheck,
    evaluate_instantiation,
    sentence_range,
)
from fi_spark.prompting import fineinstructions
from fi_spark.prompting.messages import chat_messages, check_placeholders
from fi_spark.prompting.spec import PromptSpec
from fi_spark.section import ConfigError
from fi_spark.text import instructions
from fi_spark.text.tags import parse_template

PLACEHOLDERS = {"template", "slots", "document"}
# Schema caps, in characters (~4 per token); instruction and answer caps come from InstantiateConfig.
MAX_SLOTS, MAX_SLOT_CHARS = 8, 100
# `answer_style: sentences`: the schema's maximum sentence number (3000 shown characters hold ~20-40).
MAX_SENTENCES = 40
# Marker shape the excerpts schema enforces: up to 4 markers, each side 1-60 characters, short connectors,
# or nothing at all (a declined template). Bounded like the genericize pattern, because vLLM's grammar
# compiler rejects some unbounded or wide regexes.
EXCERPT_PATTERN = r"^([^<]{0,80}(<excerpt>[^<]{1,60}<\.\.\.>[^<]{1,60}</excerpt>[^<]{0,80}){1,4})?$"
REJECT_REASONS = (
    "unparseable",
    "incompatible",
    "empty_instruction",
    "unfilled_slots",
    "sentence_number_in_instruction",
    "slot_value_empty",
    "instruction_cut",
    "instruction_too_long",
    *instructions.REASONS,
    "slot_not_in_source",
    *excerpts.REASONS,
    "answer_fragment",
    "empty_answer",
    "answer_too_short",
    "ungrounded",
    "answer_misses_slots",
    "answer_misses_question",
    "answer_type_mismatch",
    "slot_type_mismatch",
    "off_topic",
)
_DEFAULTS = InstantiateConfig.model_fields  # the one place every instantiate default is written


class SlotFill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot: str = Field(max_length=MAX_SLOT_CHARS, description="the slot description, as written in the template")
    value: str = Field(max_length=MAX_SLOT_CHARS, description="the concrete words from the document that fill it")


class Instantiation(BaseModel):
    """The structured output asked by `answer_style: copied` prompts (sent as the response schema).

    The length caps are part of the schema so a server with structured output must close the JSON in
    time: a small model otherwise rambles until `max_tokens` and the row is lost as truncated_output.
    """

    model_config = ConfigDict(extra="forbid")

    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    instruction: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class ExcerptInstantiation(BaseModel):
    """`answer_style: excerpts`: decide first (`compatible`), then fill slots, then answer with markers."""

    model_config = ConfigDict(extra="forbid")

    compatible: bool
    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    instruction: str
    answer: str


class SentenceInstantiation(BaseModel):
    """`answer_style: sentences`: decide, fill slots, then choose the answer as a range of numbered sentences."""

    model_config = ConfigDict(extra="forbid")

    compatible: bool
    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    instruction: str
    first_sentence: int = Field(ge=1, le=MAX_SENTENCES)
    last_sentence: int = Field(ge=1, le=MAX_SENTENCES)


class FilledInstantiation(BaseModel):
    """`instruction_style: filled`: decide, fill the slots, choose the sentences; the instruction is the template
    with the values filled in (pair_gates.fill_template), so the model never writes it."""

    model_config = ConfigDict(extra="forbid")

    compatible: bool
    slots: list[SlotFill] = Field(max_length=MAX_SLOTS)
    first_sentence: int = Field(ge=1, le=MAX_SENTENCES)
    last_sentence: int = Field(ge=1, le=MAX_SENTENCES)


_SCHEMAS: dict[str, type[BaseModel]] = {"excerpts": ExcerptInstantiation, "sentences": SentenceInstantiation}


def response_schema(
    n_slots: int,
    max_instruction_chars: int | None = None,
    max_answer_chars: int | None = None,
    *,
    spec: PromptSpec | None = None,
) -> dict[str, Any] | None:
    """The JSON schema for a template with exactly `n_slots` slots; None for the released models' format.

    The stage sends templates grouped by slot count, so structured output cannot invent extra slots or
    skip one; the cap of MAX_SLOTS applies when a template has more slots than that. The length caps make
    a server with structured output close the JSON in time (a small model otherwise loops to max_tokens).
    With an excerpts prompt the answer must contain at least one well-formed marker (EXCERPT_PATTERN);
    with a sentences prompt the answer is two sentence numbers in 1..MAX_SENTENCES. Both decide first and
    may decline with `{"compatible": false}` alone (`_decline_or`).
    """
    style = spec.answer_style if spec is not None else "copied"
    if spec is not None and spec.prompt_format == "fineinstructions":
        return None
    if style == "window":  # slot values only, as many as the template has slots
        items = {"type": "string", "maxLength": MAX_SLOT_CHARS}
        count = min(n_slots, MAX_SLOTS)
        values = {"type": "array", "items": items, "minItems": count, "maxItems": count}
        return {
            "type": "object",
            "properties": {"values": values},
            "required": ["values"],
            "additionalProperties": False,
        }
    filled = spec is not None and spec.instruction_style == "filled" and style == "sentences"
    schema = (FilledInstantiation if filled else _SCHEMAS.get(style, Instantiation)).model_json_schema()
    schema.pop("description", None)
    count = min(n_slots, MAX_SLOTS)
    props = schema["properties"]
    props["slots"].update(minItems=count, maxItems=count)
    if not filled:
        props["instruction"]["maxLength"] = max_instruction_chars or _DEFAULTS["max_instruction_chars"].default
    if style == "excerpts":  # vLLM refuses a maxLength beside a pattern; the pattern bounds the length
        props["answer"]["pattern"] = EXCERPT_PATTERN
    elif style != "sentences":
        props["answer"]["maxLength"] = max_answer_chars or _DEFAULTS["max_answer_chars"].default
        return schema
    if spec is not None and not spec.decline:
        props["compatible"] = {"const": True}
        return schema
    return _decline_or(schema)


DECLINE = {"type": "object", "properties": {"compatible": {"const": False}}, "required": ["compatible"],
           "additionalProperties": False}  # fmt: skip


def _decline_or(schema: dict[str, Any]) -> dict[str, Any]:
    """The whole answer with `compatible: true`, or `{"compatible": false}` and nothing more.

    Most matches are declined (25 of 30 of bench/excerpts_pairs.json with SmolLM2-135M); with `compatible`
    as a plain boolean a declined answer still wrote empty slots, an empty instruction and the answer fields.
    Under this union the grammar closes the object right after `false`. bench/decline_stop.py, local vLLM,
    instantiate.v3 on those 30 matches, same prompts: 2,195 -> 527 generated tokens, 174 -> 88
    server-seconds, the same decisions (the decision is the same token at the same position). Accepted
    branch first: a server that answers with the first branch (the test server) fills it.
    """
    defs = schema.pop("$defs", None)
    schema["properties"]["compatible"] = {"const": True}
    return {"anyOf": [schema, DECLINE], **({"$defs": defs} if defs else {})}


def slot_list(template: str) -> str:
    """The template's slot descriptions as a numbered list, one per line (the `{slots}` placeholder)."""
    descriptions = parse_template(template).descriptions
    return "\n".join(f"{i}. {d}" for i, d in enumerate(descriptions, 1)) or "(no slots)"


def check_prompt(spec: PromptSpec) -> None:
    """Fail early when the prompt file uses placeholders this module does not fill, or mixes contracts."""
    if spec.prompt_format == "fineinstructions":
        if spec.system.strip() or spec.examples or spec.user.strip():
            raise ConfigError(
                f"prompt {spec.path or spec.name}: prompt_format fineinstructions builds its own user turn "
                "(the released model's JSON input); leave system, user and examples empty"
            )
        return
    check_placeholders(spec, PLACEHOLDERS)


def build_messages(
    spec: PromptSpec,
    template: str,
    source_text: str,
    max_source_chars: int,
    choices: list[list[str]] | None = None,
) -> list[dict[str, str]]:
    """Chat messages asking the model to instantiate `template` from `source_text` (cut to max_source_chars);
    `choices`: per slot, phrases of the document to copy one from (fi_spark.instantiate.slot_choices)."""
    shown = excerpts.shown_text(source_text, max_source_chars)
    if spec.prompt_format == "fineinstructions":
        return fineinstructions.instantiator_messages(template, shown)

    numbered = spec.answer_style == "sentences"

    def example(values: dict[str, Any], output: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        values.setdefault("slots", slot_list(str(values.get("template", ""))))
        if numbered:
            values["document"] = excerpts.number_sentences(str(values.get("document", "")))
        return values, output

    document = excerpts.number_sentences(shown) if numbered else shown
    slots = slot_list(template)
    if choices is not None:
        slots = slot_choices.slot_list_with_choices(parse_template(template).descriptions, choices)
    values = {"template": template, "slots": slots, "document": document}
    return chat_messages(spec, values, example)
