"""Every table's schema and key, in one place.

A `TableSpec` names a table (the same string is its folder under `<output>/tables/` and its MLflow
metric prefix), its Spark schema, and its key columns: writes are idempotent on the key (see
fi_spark.tables), and stages check their input against the spec on entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: StructType
    key: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


def _s(*fields: tuple[str, object, bool]) -> StructType:
    return StructType([StructField(name, dtype, nullable) for name, dtype, nullable in fields])  # type: ignore[arg-type]


# ---- prepare_corpus
DOCUMENTS = TableSpec(
    "documents",
    _s(
        ("doc_id", StringType(), False),
        ("source_id", StringType(), True),  # the id given in the input, when there was one
        ("url", StringType(), True),
        ("text", StringType(), False),  # normalized text
        ("text_hash", StringType(), False),  # sha256 of the normalized text (exact-dedup key)
        ("n_chars", IntegerType(), False),
        ("n_words", IntegerType(), False),
        ("metadata", MapType(StringType(), StringType()), True),
        ("input_file", StringType(), True),
    ),
    key=("doc_id",),
)

CHUNKS = TableSpec(
    "chunks",
    _s(
        ("chunk_id", StringType(), False),
        ("doc_id", StringType(), False),
        ("ordinal", IntegerType(), False),
        ("char_start", IntegerType(), False),
        ("char_end", IntegerType(), False),
        ("text", StringType(), False),
        ("n_tokens", IntegerType(), False),
    ),
    key=("chunk_id",),
)

DUPLICATES = TableSpec(
    "duplicates",
    _s(
        ("doc_id", StringType(), False),
        ("kept_id", StringType(), False),
        ("method", StringType(), False),  # exact | minhash
        ("similarity", DoubleType(), True),
    ),
    key=("doc_id",),
)

DOC_REJECTS = TableSpec(
    "doc_rejects",
    _s(
        ("doc_id", StringType(), False),
        ("reason", StringType(), False),  # machine-readable, see fi_spark.text.quality.REASONS
        ("detail", StringType(), True),
        ("input_file", StringType(), True),
        ("raw_excerpt", StringType(), True),  # first characters of the offending input, for a person to look at
    ),
    key=("doc_id", "reason"),
)

# Near-duplicate clusters (fi_spark.dedup.near_dedup): one row per member of every cluster of 2+ documents.
DUP_CLUSTERS = TableSpec(
    "dup_clusters",
    _s(
        ("cluster_id", StringType(), False),  # the smallest doc_id of the cluster (stable across runs)
        ("doc_id", StringType(), False),
        ("kept", BooleanType(), False),  # the cluster's survivor (near_dedup.survivor rule)
        ("similarity", DoubleType(), True),  # Jaccard to the survivor (exact or estimated: near_dedup.verify)
    ),
    key=("doc_id",),
)

# ---- llm (fi_spark.llm): the request ledger shared by every generation stage
LLM_RESPONSES = TableSpec(
    "llm_responses",
    _s(
        ("request_id", StringType(), False),  # sha256 of (model, messages/prompt, sampling params, schema, stage)
        ("stage", StringType(), False),
        ("model", StringType(), False),
        ("content", StringType(), True),  # raw model text
        ("parsed", StringType(), True),  # schema-valid answer as canonical JSON (with a response schema)
        ("logprobs", StringType(), True),  # JSON [[token, {alternative: logprob}], ...] (fi_spark.llm.adapter)
        ("error_reason", StringType(), True),  # null = ok; else a final reason (fi_spark.llm.types.FINAL_REASONS)
        ("error", StringType(), True),
        ("finish_reason", StringType(), True),
        ("prompt_tokens", LongType(), True),
        ("cached_tokens", LongType(), True),  # prompt tokens the server served from its prefix cache
        ("completion_tokens", LongType(), True),
        ("latency_ms", DoubleType(), True),  # the answering attempt
        ("server_ms", DoubleType(), True),  # server time: the attempts answered with a completion (normally one)
        ("total_ms", DoubleType(), True),  # all attempts, backoff waits included
        ("attempts", IntegerType(), False),
        ("retry_causes", ArrayType(StringType()), True),
        ("endpoint", StringType(), True),
        ("finished_at_ms", LongType(), False),
        ("run_id", StringType(), False),  # the `complete` call that sent it
    ),
    key=("request_id",),
)

# Transient failures (retries exhausted, budget, endpoints down): kept per run for telemetry and for the
# results of that run, but not in the ledger, so the next run sends these requests again.
LLM_FAILURES = TableSpec("llm_failures", LLM_RESPONSES.schema, key=("request_id", "run_id"))

# ---- instantiate / judge (fi_spark.generate): one pair per match, one verdict per pair
SLOT_VALUES = ArrayType(StructType([StructField("slot", StringType()), StructField("value", StringType())]))

PAIRS = TableSpec(
    "pairs",
    _s(
        ("pair_id", StringType(), False),  # sha256 of (doc_id, chunk_id, template_id): one pair per match
        ("doc_id", StringType(), False),
        ("chunk_id", StringType(), True),  # the matched chunk / region whose text the model saw
        ("template_id", StringType(), False),
        ("instruction", StringType(), False),
        ("answer", StringType(), False),
        ("slot_values", SLOT_VALUES, True),
        ("grounding", DoubleType(), False),  # excerpt coverage (fi_spark.generate.grounding)
        ("answer_tokens", IntegerType(), False),  # word tokens of the answer, as grounding counts them
        ("longest_excerpt", IntegerType(), False),
        ("excerpt_share", DoubleType(), True),  # share of the expanded answer's characters from <excerpt> markers
        ("relevance", DoubleType(), True),  # cosine of instruction and answer (fi_spark.generate.relevance)
        ("match_score", DoubleType(), True),
        ("match_rank", IntegerType(), True),
        ("char_start", IntegerType(), True),  # the span of the document the source text is (judge and export
        ("char_end", IntegerType(), True),  #   rebuild the source from it, never from matches)
        ("model", StringType(), False),
        ("prompt_version", StringType(), False),  # PromptSpec.version_tag
        ("request_id", StringType(), False),  # -> llm_responses
    ),
    key=("pair_id",),
)

PAIR_REJECTS = TableSpec(
    "pair_rejects",
    _s(
        ("pair_id", StringType(), False),
        ("doc_id", StringType(), False),
        ("chunk_id", StringType(), True),
        ("template_id", StringType(), False),
        ("reason", StringType(), False),  # fi_spark.generate.instantiate.REJECT_REASONS, contaminated, llm_<reason>
        ("detail", StringType(), True),  # with the measured value (grounding, overlapping n-gram, ...)
        ("grounding", DoubleType(), True),
        ("instruction", StringType(), True),
        ("answer", StringType(), True),
        ("model", StringType(), False),
        ("prompt_version", StringType(), False),
        ("request_id", StringType(), True),
    ),
    key=("pair_id", "reason"),
)

JUDGED = TableSpec(
    "judged",
    _s(
        ("pair_id", StringType(), False),
        ("score", IntegerType(), True),  # null when no usable verdict came back (see error_reason)
        ("rationale", StringType(), True),  # null without judge.rationale (the one-token verdict)
        ("error_reason", StringType(), True),  # judge_unparseable, judge_score_out_of_range, llm_<final reason>
        ("detail", StringType(), True),
        ("expected_score", DoubleType(), True),  # score expected from the first token's logprobs, when returned
        ("scale_min", IntegerType(), False),
        ("scale_max", IntegerType(), False),
        ("model", StringType(), False),
        ("prompt_version", StringType(), False),
        ("request_id", StringType(), False),
    ),
    key=("pair_id",),
)

# ---- ingest_queries / genericize / import_templates / build_index / match (fi_spark.templates, embed, index)
QUERIES = TableSpec(
    "queries",
    _s(
        ("query_id", StringType(), False),  # "q-" + 24 hex of sha256 of the normalized text (exact-dedup key)
        ("text", StringType(), False),  # normalized query text
        ("source_id", StringType(), True),  # the id given in the input, when there was one
        ("source", StringType(), True),
        ("n_chars", IntegerType(), False),
        ("input_file", StringType(), True),
    ),
    key=("query_id",),
)

QUERY_REJECTS = TableSpec(
    "query_rejects",
    _s(
        ("reject_id", StringType(), False),  # sha256 of (input_file, raw record) + occurrence
        ("query_id", StringType(), True),  # for duplicates: the query that was kept
        ("reason", StringType(), False),  # fi_spark.stages.ingest_queries.REASONS
        ("detail", StringType(), True),
        ("source_id", StringType(), True),
        ("input_file", StringType(), True),
        ("raw_excerpt", StringType(), True),
    ),
    key=("reject_id",),
)

TEMPLATES = TableSpec(
    "templates",
    _s(
        ("template_id", StringType(), False),  # 16 hex of sha256 of the template key (skeleton when merging)
        ("template", StringType(), False),  # canonical text with <fi>slot</fi> tags
        ("slots", ArrayType(StringType()), False),  # slot descriptions in order
        ("n_slots", IntegerType(), False),
        ("compatible_doc_description", StringType(), False),
        ("source_query_ids", ArrayType(StringType()), False),  # queries merged into this template (empty: bank)
        ("origin", StringType(), False),  # genericize:<prompt version tag> | bank:<file>
        ("model", StringType(), True),  # the genericizer model (null for banks)
    ),
    key=("template_id",),
)

# Which template each genericized query became. `templates.source_query_ids` lists the queries merged in the
# run that stored the template; a query whose template merges into one stored by an earlier run is recorded
# only here (tables are append-only), so pending queries and the lineage read both.
TEMPLATE_SOURCES = TableSpec(
    "template_sources",
    _s(("query_id", StringType(), False), ("template_id", StringType(), False)),
    key=("query_id",),
)

TEMPLATE_REJECTS = TableSpec(
    "template_rejects",
    _s(
        ("source_key", StringType(), False),  # query_id (genericize) or bank row id (import)
        ("reason", StringType(), False),  # fi_spark.templates.REASONS or llm_<reason>
        ("detail", StringType(), True),
        ("template", StringType(), True),  # what the model (or bank) gave, for a person to look at
        ("compatible_doc_description", StringType(), True),
        ("query", StringType(), True),
        ("origin", StringType(), False),
        ("request_id", StringType(), True),  # -> llm_responses
    ),
    key=("source_key",),
)

TEMPLATE_VECTORS = TableSpec(
    "template_vectors",
    _s(
        ("template_id", StringType(), False),
        ("model", StringType(), False),  # embed.model: vectors of different encoders never mix
        ("vector", BinaryType(), False),  # float32 little-endian, unit length
        ("dim", IntegerType(), False),
    ),
    key=("template_id", "model"),
)

MATCHES = TableSpec(
    "matches",
    _s(
        ("doc_id", StringType(), False),
        ("template_id", StringType(), False),
        ("chunk_id", StringType(), True),  # the chunk the matching vector centres on (the text to instantiate)
        ("char_start", IntegerType(), True),  # that chunk's span in the document
        ("char_end", IntegerType(), True),
        ("region", IntegerType(), False),  # 0 = whole-document vector, 1..N = Gaussian region
        ("centre", FloatType(), False),  # region centre as a fraction of the document
        ("score", FloatType(), False),  # inner product of unit vectors (cosine)
        ("rank", IntegerType(), False),  # 1 = the document's best template after the caps
        ("index_version", StringType(), False),
    ),
    key=("doc_id", "template_id"),
)

MATCH_REJECTS = TableSpec(
    "match_rejects",
    _s(
        ("doc_id", StringType(), False),
        ("reason", StringType(), False),  # fi_spark.stages.match.REASONS
        ("detail", StringType(), True),
        ("index_version", StringType(), False),
    ),
    key=("doc_id",),
)

ALL_TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        DOCUMENTS,
        CHUNKS,
        DUPLICATES,
        DOC_REJECTS,
        DUP_CLUSTERS,
        LLM_RESPONSES,
        LLM_FAILURES,
        PAIRS,
        PAIR_REJECTS,
        JUDGED,
        QUERIES,
        QUERY_REJECTS,
        TEMPLATES,
        TEMPLATE_SOURCES,
        TEMPLATE_REJECTS,
        TEMPLATE_VECTORS,
        MATCHES,
        MATCH_REJECTS,
    )  # fmt: skip
}

__all__ = [
    "ALL_TABLES",
    "CHUNKS",
    "DOCUMENTS",
    "DOC_REJECTS",
    "DUPLICATES",
    "DUP_CLUSTERS",
    "JUDGED",
    "LLM_FAILURES",
    "LLM_RESPONSES",
    "MATCHES",
    "MATCH_REJECTS",
    "QUERIES",
    "QUERY_REJECTS",
    "TEMPLATES",
    "TEMPLATE_REJECTS",
    "TEMPLATE_SOURCES",
    "TEMPLATE_VECTORS",
    "PAIRS",
    "PAIR_REJECTS",
    "TableSpec",
    "ArrayType",
    "DoubleType",
    "FloatType",
    "IntegerType",
    "LongType",
    "MapType",
    "StringType",
    "StructField",
    "StructType",
]
