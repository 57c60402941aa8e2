"""The one list of stages: names, help texts, where each stage's code lives and what it takes besides tables.

``STAGES`` is the single registry: the pipeline (fi_spark.run.pipeline) runs it top to bottom and the CLI makes
one ``fi-spark <stage>`` command of each entry. An entry holds only names and text, so reading it imports no
stage (and no pyspark: `fi-spark --help` stays fast, tests/unit/test_pipeline_contract.py). What a stage reads
and writes is declared in its own module (``TABLES``, fi_spark.stages.base.StageTables); the pipeline reads
those declarations when it runs. Each stage's code is one module in its family's package (``module``), beside
that family's prompts, parsing and validation.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PipelineInputs:
    """The files a run reads besides its tables (`--documents`, `--queries`)."""

    documents: str | None = None
    queries: str | None = None


@dataclass(frozen=True)
class StageSpec:
    name: str  # MLflow run name, `fi-spark <name with dashes>`, the stage's module's file name
    family: str  # the package under fi_spark that holds the stage's code and its pure logic
    help: str
    inputs: tuple[str, ...] = ()  # what the stage takes besides tables: PipelineInputs fields, or "layout"

    @property
    def command(self) -> str:
        return self.name.replace("_", "-")

    @property
    def module(self) -> str:
        """The stage's module: fi_spark.<family>.<name> (its `run(ctx, ...)` and `TABLES`)."""
        return f"fi_spark.{self.family}.{self.name}"


STAGES: list[StageSpec] = [
    StageSpec(
        "prepare_corpus",
        "ingest",
        "normalize, filter, dedup and chunk documents -> documents, chunks, duplicates, doc_rejects",
        ("documents",),
    ),
    StageSpec(
        "ingest_queries", "ingest", "read, normalize and dedup user queries -> queries, query_rejects", ("queries",)
    ),
    StageSpec(
        "genericize", "genericize", "LLM: queries -> <fi> templates + compatible-document descriptions -> templates"
    ),
    StageSpec(
        "import_templates",
        "genericize",
        "load a pre-built template bank (templates.bank), validated like genericized ones",
    ),
    StageSpec("build_index", "index", "embed template descriptions, build a versioned FAISS index artifact"),
    StageSpec("match", "match", "embed documents (Gaussian coverage pooling), retrieve templates with caps -> matches"),
    StageSpec("instantiate", "instantiate", "LLM: fill each matched template from its document and answer -> pairs"),
    StageSpec(
        "judge",
        "judge",
        "LLM judge scores each pair -> judged (threshold applied as a view); the score is the judge prompt's: "
        "the local profile's judge.v4 reads the answer's likelihood lift from its instruction, judge.v1-v3 ask "
        "for a rubric or yes/no score",
    ),
    StageSpec("export", "export", "chat-format Parquet/JSONL shards, dataset card, token counts", ("layout",)),
    StageSpec("report", "report", "HTML report with plots of the whole run", ("layout",)),
]


def stage(name: str) -> StageSpec:
    return next(s for s in STAGES if s.name == name)
