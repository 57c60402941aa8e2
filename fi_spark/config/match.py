"""Settings of the match stage (fi_spark.match)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fi_spark.section import Section


class MatchConfig(Section):
    """match: documents -> candidate templates -> planned pairs, by the paper's rules (fi_spark.match.candidates):
    a cosine threshold, a few candidates per document, slot-count-weighted sampling, a global per-template cap
    and a token-for-token budget, applied before instantiation and again in the final view after judging."""

    top_k: int = Field(default=20, ge=1, description="templates retrieved per document vector (search depth)")
    min_score: float = Field(
        default=0.2, ge=-1.0, le=1.0,
        description="cosine threshold: candidates below it are dropped (paper: 0.865 with its BGE-M3 embedding; "
        "with all-MiniLM-L6-v2 and the sample's ~20 templates, 0.2 keeps 26% of the bundled documents, 0.3 keeps 5%)",
    )  # fmt: skip
    candidates_per_doc: int = Field(default=6, ge=1, description="candidates a document keeps (paper: 6)")
    max_per_doc: int = Field(default=3, ge=1, description="pairs planned per document at most")
    selection: Literal["best", "slot_weighted"] = Field(
        default="best",
        description="order in which a document's candidates are planned: best = highest score first; "
        "slot_weighted = weighted sample that keeps the bank's slot-count distribution (paper); choose from both",
    )
    seed: int = Field(default=0, description="seed of the slot_weighted sample (deterministic per doc/template)")
    token_budget: float | None = Field(
        default=1.0, gt=0.0,
        description="pairs of a document may use at most this times its tokens (paper: 1.0); null = no budget",
    )  # fmt: skip
    answer_tokens: int = Field(
        default=60, ge=0, description="estimated answer tokens of a pair, for the budget before instantiation"
    )
    max_per_template: int | None = Field(default=100, ge=1, description="documents one template may serve")
    max_template_share: float | None = Field(
        default=None, gt=0.0, le=1.0,
        description="or at most this fraction of all planned pairs (paper: 0.0009); the tighter cap wins",
    )  # fmt: skip
    partitions: int | None = Field(default=None, ge=1, description="repartition the input to this many tasks")
    gpu: bool | Literal["auto"] = Field(
        default="auto",
        description="run the encoder tasks under a GPU resource profile: auto = on classic Spark whose executors "
        "have GPUs (spark.executor.resource.gpu.amount); true = require them; false = never",
    )
    gpu_amount: float = Field(default=1.0, gt=0.0, description="GPUs per encoder task (0.5: two tasks share one)")
    gpu_batch_size: int = Field(
        default=256, ge=1, description="encoder batch size in a task given a GPU (tasks without one: embed.batch_size)"
    )
