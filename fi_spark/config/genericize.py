"""Settings of query ingestion (fi_spark.ingest.queries) and template making (genericize, import, merge)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fi_spark.config.llm import StageLLMConfig
from fi_spark.section import Section


class TemplatesConfig(Section):
    """genericize / template import: prompt, validation rules, near-duplicate merge (fi_spark.genericize)."""

    prompt: str = Field(
        default="genericize.v1", description="prompt name under conf/prompts/ (e.g. genericize.v1) or a YAML path"
    )
    max_tokens: int | None = Field(
        default=400, ge=1, description="override of llm.max_tokens for genericize (the answer schema fits in ~400)"
    )
    sample_queries: int | None = Field(
        default=None,
        ge=1,
        description="genericize only this deterministic sample of the queries (the ones "
        "with the smallest id hash); a re-run sends nothing new. For laptops and trials; unset on clusters.",
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    llm: StageLLMConfig = Field(
        default_factory=StageLLMConfig, description="genericize's own llm keys (endpoints, model, ...); the rest: llm.*"
    )
    min_chars: int = Field(default=15, ge=1, description="template length bounds (characters, tags included)")
    max_chars: int = Field(default=1000, ge=1)
    min_slots: int = Field(default=1, ge=0)
    max_slots: int = Field(default=10, ge=1)
    max_slot_chars: int = Field(default=150, ge=1, description="a longer slot description is copied content")
    min_slot_chars: int = Field(default=3, ge=1, description="a shorter slot description (`<fi>x</fi>`) says nothing")
    max_slot_share: float = Field(
        default=0.85, gt=0.0, le=1.0, description="reject templates whose text is more than this share slot text"
    )
    description_repeat_ngram: int = Field(
        default=5, ge=2, description="a description in which a word n-gram of this size occurs twice repeats itself"
    )
    min_description_chars: int = Field(default=20, ge=1, description="compatible document description bounds")
    max_description_chars: int = Field(default=1500, ge=1)
    check_leftover_specifics: bool = Field(
        default=True, description="reject templates that keep query specifics (numbers, names, quotes) outside slots"
    )
    max_leftover_specifics: int = Field(default=0, ge=0, description="how many such leftovers are tolerated")
    extractive_only: bool = Field(
        default=False,
        description="skip (reject not_extractive, no LLM call) queries that ask for new writing -- a poem, an "
        "email, ideas, a rewrite -- which a verbatim excerpt cannot answer; on where answers are excerpts "
        "(the local profile's instantiate.v3)",
    )
    snap_slots: bool = Field(
        default=True,
        description="a slot cutting through a word (`<fi>a job</fi>s`) takes in the glued letters (at most 3) "
        "instead of a slot_splits_word reject",
    )
    min_query_word_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of a generated template's words outside slots that must come from its query "
        "(drifted_from_query below it; 0 = off, the default: a released templatizer rephrases on purpose, and "
        "genericize.v2's templates are the query's words by construction; 0.6 caught genericize.v1's 135M model "
        "writing on past the query; imported banks have no query and are not checked)",
    )
    merge_near_duplicates: bool = Field(
        default=True, description="merge templates with the same skeleton (case, punctuation, slot wording)"
    )
    bank: list[str] = Field(default_factory=list, description="pre-built template bank files to import (jsonl/parquet)")
    bank_rules: Literal["released", "ours"] = Field(
        default="released",
        description="released: keep each bank template as released, rejecting only what cannot be used (no text, "
        "unparseable tags, no slot, no description), near-duplicates not merged; ours: the genericizer's rules and "
        "merge above; choose from both",
    )
    bank_template_column: str = "template"
    bank_description_column: str = "compatible_document_description"
    bank_source_query_column: str | None = Field(
        default="source_query_id", description="bank column naming the query a template was made from (lineage)"
    )
    bank_generator_column: str | None = Field(
        default="generator", description="bank column naming the model that wrote the template (lineage)"
    )
    bank_generator: str | None = Field(
        default=None, description="the generator to record when the bank has no generator column"
    )

    @model_validator(mode="after")
    def _bounds(self) -> TemplatesConfig:
        for low, high in (("min_chars", "max_chars"), ("min_slots", "max_slots")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"templates.{low} must not exceed templates.{high}")
        if self.min_description_chars > self.max_description_chars:
            raise ValueError("templates.min_description_chars must not exceed templates.max_description_chars")
        return self
