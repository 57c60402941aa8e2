"""Settings of the instantiate stage (fi_spark.instantiate)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fi_spark.config.llm import StageLLMConfig
from fi_spark.section import Section


class InstantiateConfig(Section):
    """instantiate: fill template slots from the matched text, write a grounded answer (fi_spark.generate).

    The small-model gates (check_answer_type, min_question_coverage, answer_span, min_slot_fit, min_relevance)
    belong to the contract in which the stage, not the model, builds the pair: they apply with a prompt whose
    `instruction_style` is `filled` (instantiate.v4-v7, the local profile's) and are ignored otherwise, where a
    model that writes its own instruction and answer is judged by the judge."""

    prompt: str = Field(default="instantiate.v1", description="prompt under conf/prompts/ or a YAML path")
    max_tokens: int | None = Field(default=None, ge=1, description="override of llm.max_tokens")
    sample_pairs: int | None = Field(
        default=None,
        ge=1,
        description="instantiate only this deterministic sample of the matches (smallest "
        "pair id hash); a re-run sends nothing new. For laptops and trials; unset on clusters.",
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    llm: StageLLMConfig = Field(
        default_factory=StageLLMConfig,
        description="instantiate's own llm keys (endpoints, model, ...); the rest: llm.*",
    )
    source: Literal["chunk", "document"] = Field(
        default="chunk",
        description="what the instantiator reads: chunk = the matched chunk (or region's chunk); document = the "
        "document from its start up to max_source_chars, cut at a sentence end, the cut recorded in the pair's "
        "char_end (the paper; fi_spark.stages.sources); choose from both",
    )
    max_source_chars: int = Field(
        default=3000, ge=100,
        description="source text is cut to this many characters (with source=document: the model's context)",
    )  # fmt: skip
    min_grounding: float = Field(
        default=0.8, ge=0.0, le=1.0, description="share of answer tokens excerpted verbatim (the paper: 80%)"
    )
    grounding_min_span: int = Field(default=5, ge=1, description="an excerpt is at least this many word tokens")
    min_answer_tokens: int = Field(
        default=5,
        ge=1,
        description="shorter answers are rejected (answer_too_short); the default is one excerpt "
        "(grounding_min_span): a shorter answer cannot be shown to be copied from its source",
    )
    max_instruction_chars: int = Field(
        default=400, ge=20, description="cap in the response schema: structured output must end the instruction"
    )
    max_answer_chars: int = Field(
        default=1500, ge=50, description="cap in the response schema, so a looping model closes its JSON in time"
    )
    slot_values_from_source: bool = Field(
        default=False,
        description="every slot value must be words of the shown text (slot_not_in_source): the request is then "
        "about what the document says; for small models that fill slots with the template's own examples",
    )
    min_slot_coverage: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of each slot value's content words the answer must contain (answer_misses_slots "
        "below it; 0 = off): an answer that never names what was asked about answers another question",
    )
    min_question_coverage: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of the template's own content words (outside slots) the answer must mention "
        "(answer_misses_question below it; 0 = off): an answer about the entity but not the predicate asked",
    )
    check_answer_type: bool = Field(
        default=False,
        description="the answer must hold an answer of the kind asked (a definition for `Who is X?`, a time for "
        "`When ...?`, a number for `How many ...?`; answer_type_mismatch otherwise, fi_spark.instantiate.pair_gates)",
    )
    answer_span: Literal["model", "best"] = Field(
        default="model",
        description="answer_style sentences: the range the model chose, or (best) the window of 1-3 whole "
        "sentences that names every slot value and is closest to the instruction under the embed encoder "
        "(fi_spark.instantiate.relevance); choose from model, best",
    )
    min_slot_fit: float = Field(
        default=-1.0,
        ge=-1.0,
        le=1.0,
        description="with answer_span best: the lowest cosine of a slot's description and its value under the embed "
        "encoder (slot_type_mismatch below it: `a sovereign state` filled with `the 2003 boat race`); -1 = off",
    )
    min_relevance: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description="cosine of instruction and answer under the embed encoder (pairs.relevance; off_topic "
        "below it; 0 = off). Calibrated on bench/labeled/ (bench/pair_gates.py)",
    )
