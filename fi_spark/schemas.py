"""Every table's schema, key and description, in one place.

A `TableSpec` names a table (the same string is its folder under `<output>/tables/`, its name in the
catalog (fi_spark.catalog) and its MLflow metric prefix), its Spark schema, and its key columns: writes are
idempotent on the key (see fi_spark.tables), and stages check their input against the spec on entry.
Each table and column carries a one-line description: the catalog registers them as table and column
comments, so `DESCRIBE TABLE judged` explains itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
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
    doc: str = ""  # what one row is: the table comment
    column_docs: Mapping[str, str] = field(default_factory=dict, compare=False)  # column -> its comment

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


Column = tuple[str, DataType, bool, str]  # name, type, nullable, description


def _table(name: str, doc: str, key: tuple[str, ...], *columns: Column) -> TableSpec:
    schema = StructType([StructField(c, dtype, nullable) for c, dtype, nullable, _ in columns])
    return TableSpec(name, schema, key, doc, {c: text for c, _, _, text in columns})


# ---- prepare_corpus
DOCUMENTS = _table(
    "documents",
    "one row per kept input document: normalized text, exact-dedup hash, sizes, source",
    ("doc_id",),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("source_id", StringType(), True, "the id given in the input, when there was one"),
    ("url", StringType(), True, "the document's URL, when the input had one"),
    ("text", StringType(), False, "normalized text"),
    ("text_hash", StringType(), False, "sha256 of the normalized text (exact-dedup key)"),
    ("n_chars", IntegerType(), False, "characters of the normalized text"),
    ("n_words", IntegerType(), False, "words of the normalized text"),
    ("metadata", MapType(StringType(), StringType()), True, "the input record's other fields, as strings"),
    ("input_file", StringType(), True, "the input file the row came from"),
)

CHUNKS = _table(
    "chunks",
    "token windows of each kept document (the text that is embedded and matched)",
    ("chunk_id",),
    ("chunk_id", StringType(), False, "chunk id (chunks.chunk_id)"),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("ordinal", IntegerType(), False, "position of the chunk in its document, from 0"),
    ("char_start", IntegerType(), False, "first character of the span in the document"),
    ("char_end", IntegerType(), False, "end of the span in the document (exclusive)"),
    ("text", StringType(), False, "the chunk's text"),
    ("n_tokens", IntegerType(), False, "tokens of the chunk (prepare.tokenizer)"),
)

DUPLICATES = _table(
    "duplicates",
    "input documents dropped as exact or near copies of a kept document",
    ("doc_id",),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("kept_id", StringType(), False, "the document kept in its place"),
    ("method", StringType(), False, "exact | minhash"),
    ("similarity", DoubleType(), True, "similarity to the kept document (1.0 for exact copies)"),
)

DOC_REJECTS = _table(
    "doc_rejects",
    "input documents rejected by the quality filters, with the reason",
    ("doc_id", "reason"),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("reason", StringType(), False, "machine-readable, see fi_spark.ingest.quality.REASONS"),
    ("detail", StringType(), True, "the measured value or message behind the reason"),
    ("input_file", StringType(), True, "the input file the row came from"),
    ("raw_excerpt", StringType(), True, "first characters of the offending input, for a person to look at"),
)

# Near-duplicate clusters (fi_spark.dedup.near_dedup): one row per member of every cluster of 2+ documents.
DUP_CLUSTERS = _table(
    "dup_clusters",
    "near-duplicate clusters: one row per member of every cluster of 2+ documents",
    ("doc_id",),
    ("cluster_id", StringType(), False, "the smallest doc_id of the cluster (stable across runs)"),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("kept", BooleanType(), False, "the cluster's survivor (near_dedup.survivor rule)"),
    ("similarity", DoubleType(), True, "Jaccard to the survivor (exact or estimated: near_dedup.verify)"),
)

# ---- llm (fi_spark.llm): the request ledger shared by every generation stage
LLM_RESPONSES = _table(
    "llm_responses",
    "the LLM ledger: one answered request per row, so a re-run never pays twice",
    ("request_id",),
    ("request_id", StringType(), False, "sha256 of (model, messages/prompt, sampling params, schema, stage)"),
    ("stage", StringType(), False, "the stage that sent the request"),
    ("model", StringType(), False, "the model that answered"),
    ("content", StringType(), True, "raw model text"),
    ("parsed", StringType(), True, "schema-valid answer as canonical JSON (with a response schema)"),
    ("logprobs", StringType(), True, "JSON [[token, {alternative: logprob}], ...] (fi_spark.llm.adapter)"),
    ("error_reason", StringType(), True, "null = ok; else a final reason (fi_spark.llm.types.FINAL_REASONS)"),
    ("error", StringType(), True, "the error message of a failed request"),
    ("finish_reason", StringType(), True, "why generation stopped (stop, length, ...)"),
    ("prompt_tokens", LongType(), True, "prompt tokens of the request"),
    ("cached_tokens", LongType(), True, "prompt tokens the server served from its prefix cache"),
    ("completion_tokens", LongType(), True, "generated tokens"),
    ("latency_ms", DoubleType(), True, "milliseconds of the answering attempt"),
    ("server_ms", DoubleType(), True, "server time: the attempts answered with a completion (normally one)"),
    ("total_ms", DoubleType(), True, "all attempts, backoff waits included"),
    ("attempts", IntegerType(), False, "attempts made (retries included)"),
    ("retry_causes", ArrayType(StringType()), True, "why each retried attempt failed"),
    ("endpoint", StringType(), True, "the endpoint that answered"),
    ("finished_at_ms", LongType(), False, "when the answer arrived (unix ms)"),
    ("run_id", StringType(), False, "the `complete` call that sent it"),
)

# Transient failures (retries exhausted, budget, endpoints down): kept per run for telemetry and for the
# results of that run, but not in the ledger, so the next run sends these requests again.
LLM_FAILURES = TableSpec(
    "llm_failures",
    LLM_RESPONSES.schema,
    ("request_id", "run_id"),
    "LLM requests that failed transiently in a run (sent again by the next run)",
    LLM_RESPONSES.column_docs,
)

# ---- instantiate / judge (fi_spark.generate): one pair per match, one verdict per pair
SLOT_VALUES = ArrayType(StructType([StructField("slot", StringType()), StructField("value", StringType())]))

PAIRS = _table(
    "pairs",
    "instruction/answer pairs that passed the checks, one per (document, chunk, template)",
    ("pair_id",),
    ("pair_id", StringType(), False, "sha256 of (doc_id, chunk_id, template_id): one pair per match"),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("chunk_id", StringType(), True, "the matched chunk / region whose text the model saw"),
    ("template_id", StringType(), False, "template id (templates.template_id)"),
    ("instruction", StringType(), False, "the instruction: the template with its slots filled"),
    ("answer", StringType(), False, "the answer, with excerpts expanded from the document"),
    ("slot_values", SLOT_VALUES, True, "the value given for each slot"),
    ("grounding", DoubleType(), False, "excerpt coverage (fi_spark.instantiate.grounding)"),
    ("answer_tokens", IntegerType(), False, "word tokens of the answer, as grounding counts them"),
    ("longest_excerpt", IntegerType(), False, "words of the longest verbatim excerpt"),
    ("excerpt_share", DoubleType(), True, "share of the expanded answer's characters from <excerpt> markers"),
    ("relevance", DoubleType(), True, "cosine of instruction and answer (fi_spark.instantiate.relevance)"),
    ("match_score", DoubleType(), True, "cosine similarity of the match (matches.score)"),
    ("match_rank", IntegerType(), True, "rank of the template among the document's matches"),
    ("char_start", IntegerType(), True, "start of the document span the source text is (judge, export)"),
    ("char_end", IntegerType(), True, "end of that span: the source is rebuilt from it, never from matches"),
    ("model", StringType(), False, "the model that answered"),
    ("prompt_version", StringType(), False, "prompt name.version+content hash"),
    ("request_id", StringType(), False, "the LLM request (llm_responses.request_id)"),
)

PAIR_REJECTS = _table(
    "pair_rejects",
    "pairs rejected by the checks or the LLM, with the reason and the measured value",
    ("pair_id", "reason"),
    ("pair_id", StringType(), False, "pair id (pairs.pair_id)"),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("chunk_id", StringType(), True, "chunk id (chunks.chunk_id)"),
    ("template_id", StringType(), False, "template id (templates.template_id)"),
    ("reason", StringType(), False, "fi_spark.instantiate.prompts.REJECT_REASONS, contaminated, llm_<reason>"),
    ("detail", StringType(), True, "with the measured value (grounding, overlapping n-gram, ...)"),
    ("grounding", DoubleType(), True, "excerpt coverage of the answer (fi_spark.instantiate.grounding)"),
    ("instruction", StringType(), True, "the instruction: the template with its slots filled"),
    ("answer", StringType(), True, "the answer, with excerpts expanded from the document"),
    ("model", StringType(), False, "the model that answered"),
    ("prompt_version", StringType(), False, "prompt name.version+content hash"),
    ("request_id", StringType(), True, "the LLM request (llm_responses.request_id)"),
)

JUDGED = _table(
    "judged",
    "the judge's verdict per pair (score, expected score, rationale); kept pairs: pairs_kept",
    ("pair_id",),
    ("pair_id", StringType(), False, "pair id (pairs.pair_id)"),
    ("score", IntegerType(), True, "null when no usable verdict came back (see error_reason)"),
    ("rationale", StringType(), True, "null without judge.rationale (the one-token verdict)"),
    ("error_reason", StringType(), True, "judge_unparseable, judge_score_out_of_range, llm_<final reason>"),
    ("detail", StringType(), True, "the measured value or message behind the reason"),
    ("expected_score", DoubleType(), True, "score expected from the first token's logprobs, when returned"),
    ("scale_min", IntegerType(), False, "lowest score of the judge's scale"),
    ("scale_max", IntegerType(), False, "highest score of the judge's scale"),
    ("model", StringType(), False, "the model that answered"),
    ("prompt_version", StringType(), False, "prompt name.version+content hash"),
    ("request_id", StringType(), False, "the LLM request (llm_responses.request_id)"),
)

# ---- ingest_queries / genericize / import_templates / build_index / match (fi_spark.genericize, embed, index)
QUERIES = _table(
    "queries",
    "normalized, deduplicated user queries",
    ("query_id",),
    ("query_id", StringType(), False, "'q-' + 24 hex of sha256 of the normalized text (exact-dedup key)"),
    ("text", StringType(), False, "normalized query text"),
    ("source_id", StringType(), True, "the id given in the input, when there was one"),
    ("source", StringType(), True, "the input's source field, when there was one"),
    ("n_chars", IntegerType(), False, "characters of the normalized text"),
    ("input_file", StringType(), True, "the input file the row came from"),
)

QUERY_REJECTS = _table(
    "query_rejects",
    "input queries dropped (duplicates, empty, too long), with the reason",
    ("reject_id",),
    ("reject_id", StringType(), False, "sha256 of (input_file, raw record) + occurrence"),
    ("query_id", StringType(), True, "for duplicates: the query that was kept"),
    ("reason", StringType(), False, "fi_spark.ingest.ingest_queries.REASONS"),
    ("detail", StringType(), True, "the measured value or message behind the reason"),
    ("source_id", StringType(), True, "the id given in the input, when there was one"),
    ("input_file", StringType(), True, "the input file the row came from"),
    ("raw_excerpt", StringType(), True, "first characters of the offending input, for a person to look at"),
)

TEMPLATES = _table(
    "templates",
    "instruction templates with <fi> slots and a compatible-document description",
    ("template_id",),
    ("template_id", StringType(), False, "16 hex of sha256 of the template key (skeleton when merging)"),
    ("template", StringType(), False, "canonical text with <fi>slot</fi> tags"),
    ("slots", ArrayType(StringType()), False, "slot descriptions in order"),
    ("n_slots", IntegerType(), False, "number of slots"),
    ("compatible_doc_description", StringType(), False, "what kind of document could fill the slots and answer"),
    ("source_query_ids", ArrayType(StringType()), False, "queries merged into this template (empty: bank)"),
    ("origin", StringType(), False, "genericize:<prompt version tag> | bank:<file>"),
    ("model", StringType(), True, "the genericizer model (null for banks)"),
)

# Which template each genericized query became. `templates.source_query_ids` lists the queries merged in the
# run that stored the template; a query whose template merges into one stored by an earlier run is recorded
# only here (tables are append-only), so pending queries and the lineage read both.
TEMPLATE_SOURCES = _table(
    "template_sources",
    "which template each genericized query became",
    ("query_id",),
    ("query_id", StringType(), False, "the genericized query (queries.query_id)"),
    ("template_id", StringType(), False, "the template it became or merged into"),
)

TEMPLATE_REJECTS = _table(
    "template_rejects",
    "templates rejected by validation or the LLM, with the reason",
    ("source_key",),
    ("source_key", StringType(), False, "query_id (genericize) or bank row id (import)"),
    ("reason", StringType(), False, "fi_spark.genericize.REASONS or llm_<reason>"),
    ("detail", StringType(), True, "the measured value or message behind the reason"),
    ("template", StringType(), True, "what the model (or bank) gave, for a person to look at"),
    ("compatible_doc_description", StringType(), True, "what kind of document could fill the slots and answer"),
    ("query", StringType(), True, "the query text"),
    ("origin", StringType(), False, "genericize:<prompt version tag> | bank:<file>"),
    ("request_id", StringType(), True, "the LLM request (llm_responses.request_id)"),
)

TEMPLATE_VECTORS = _table(
    "template_vectors",
    "embeddings of the templates' compatible-document descriptions",
    ("template_id", "model"),
    ("template_id", StringType(), False, "template id (templates.template_id)"),
    ("model", StringType(), False, "embed.model: vectors of different encoders never mix"),
    ("vector", BinaryType(), False, "float32 little-endian, unit length"),
    ("dim", IntegerType(), False, "vector dimension"),
)

MATCHES = _table(
    "matches",
    "documents matched to templates (Gaussian coverage pooling + FAISS), with score and rank",
    ("doc_id", "template_id"),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("template_id", StringType(), False, "template id (templates.template_id)"),
    ("chunk_id", StringType(), True, "the chunk the matching vector centres on (the text to instantiate)"),
    ("char_start", IntegerType(), True, "that chunk's span in the document"),
    ("char_end", IntegerType(), True, "end of the span in the document (exclusive)"),
    ("region", IntegerType(), False, "0 = whole-document vector, 1..N = Gaussian region"),
    ("centre", FloatType(), False, "region centre as a fraction of the document"),
    ("score", FloatType(), False, "inner product of unit vectors (cosine)"),
    ("rank", IntegerType(), False, "1 = the document's best template after the caps"),
    ("index_version", StringType(), False, "the FAISS index version that matched"),
)

MATCH_REJECTS = _table(
    "match_rejects",
    "documents without a match, with the reason",
    ("doc_id",),
    ("doc_id", StringType(), False, "document id: sha256 of the normalized text (documents.doc_id)"),
    ("reason", StringType(), False, "fi_spark.match.match.REASONS"),
    ("detail", StringType(), True, "the measured value or message behind the reason"),
    ("index_version", StringType(), False, "the FAISS index version that matched"),
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
