"""The dataset card: a README.md with YAML front matter (Hugging Face dataset-card style) and plain tables.

Consumes small, already-aggregated numbers (`CardInputs`, built by the export stage from counts and
the per-file statistics the shard writer returns) and produces Markdown. Pure: no Spark, no files, so
the text is tested literally. The card says what a user needs before training on the data: how many
pairs in which files, where the text came from and under which licenses, which models and prompt
versions made it, and which filters and thresholds it passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fi_spark.cost import CostRow, GpuRates


@dataclass(frozen=True)
class ShardStat:
    split: str
    file: str
    format: str
    rows: int
    tokens: int
    bytes: int


@dataclass(frozen=True)
class SourceStat:
    source: str
    documents: int
    pairs: int
    license: str


@dataclass(frozen=True)
class CardFunnelRow:
    stage: str
    rows_in: int
    rows_out: int

    @property
    def rejected(self) -> int:
        return self.rows_in - self.rows_out


@dataclass
class CardInputs:
    dataset_name: str
    shards: Sequence[ShardStat]
    sources: Sequence[SourceStat]
    funnel: Sequence[CardFunnelRow]
    rejects: dict[str, int]  # "stage/reason" -> rows
    models: dict[str, str]  # role -> model name
    prompts: dict[str, str]  # role -> prompt version tag
    filters: list[str]  # one sentence per filter, thresholds included
    tokenizer: str
    columns: dict[str, str] = field(default_factory=dict)  # metadata column -> meaning
    system_prompt: str | None = None
    cost: list[CostRow] = field(default_factory=list)  # per LLM stage + total over this dataset's pairs
    gpu_rates: GpuRates = field(default_factory=GpuRates)  # what the cost estimate assumed


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M" if n < 10_000_000 else "n>10M"


def _front_matter(inputs: CardInputs, rows_by_split: dict[str, int]) -> str:
    licenses = sorted({s.license for s in inputs.sources})
    license_line = licenses[0] if len(licenses) == 1 and not licenses[0].startswith("unknown") else "other"
    parquet = any(s.format == "parquet" for s in inputs.shards)
    ext = "parquet" if parquet else "jsonl"
    lines = [
        "---",
        f"pretty_name: {inputs.dataset_name}",
        f"license: {license_line}",
        "task_categories:",
        "- text-generation",
        "size_categories:",
        f"- {_size_category(sum(rows_by_split.values()))}",
    ]
    if rows_by_split:
        lines += ["configs:", "- config_name: default", "  data_files:"]
    for split in rows_by_split:
        lines += [f"  - split: {split}", f"    path: data/{split}-*.{ext}"]
    lines.append("---")
    return "\n".join(lines)


def render_card(inputs: CardInputs) -> str:
    """The README.md text of an exported dataset."""
    rows_by_split: dict[str, int] = {}
    tokens_by_split: dict[str, int] = {}
    first_format = inputs.shards[0].format if inputs.shards else None
    for shard in inputs.shards:
        if shard.format == first_format:  # each format holds the same rows: count one of them
            rows_by_split[shard.split] = rows_by_split.get(shard.split, 0) + shard.rows
            tokens_by_split[shard.split] = tokens_by_split.get(shard.split, 0) + shard.tokens
    total = sum(rows_by_split.values())
    rejects: list[tuple[str, int]] = sorted(inputs.rejects.items(), key=lambda kv: (-kv[1], kv[0]))
    turns = "a system turn, then " if inputs.system_prompt else ""
    parts = [
        _front_matter(inputs, rows_by_split),
        f"# {inputs.dataset_name}",
        (
            f"{total:,} instruction/answer pairs grounded in source documents, made with fi-spark following the "
            "FineInstructions recipe (Patel, Raffel, Callison-Burch 2026, arXiv 2601.22146): real user queries "
            "were turned into instruction templates, templates were matched to documents, an LLM filled each "
            "template from its document and answered with excerpts of it, and an LLM judge scored every pair."
        ),
        "## Format",
        f"Each record has `id`, `messages` ({turns}the instruction as the `user` turn and the answer as the "
        "`assistant` turn) and metadata columns that trace the pair back to its inputs (below). Files: "
        + ", ".join(sorted({f"`{s.format}`" for s in inputs.shards}))
        + f". Token counts are content tokens of all turns with the `{inputs.tokenizer}` tokenizer "
        "(no special tokens, no chat template).",
        "## Splits",
        _table(
            ["split", "pairs", "tokens"],
            [(s, rows_by_split[s], tokens_by_split[s]) for s in rows_by_split],
        ),
        "## Files",
        _table(
            ["file", "split", "pairs", "tokens", "bytes"],
            [(s.file, s.split, s.rows, s.tokens, s.bytes) for s in inputs.shards],
        ),
        "## Sources and licenses",
        "The licenses are those of the input documents; generated text derived from them may carry their terms.",
        _table(
            ["source", "documents", "pairs", "license"],
            [(s.source, s.documents, s.pairs, s.license) for s in inputs.sources],
        ),
        "## Models and prompts",
        _table(
            ["role", "model", "model license", "prompt version"],
            [
                (role, model := inputs.models.get(role, "-"), _model_license(model), inputs.prompts.get(role, "-"))
                for role in _roles(inputs)
            ],
        ),
        "## Filters and thresholds",
        "\n".join(f"- {line}" for line in inputs.filters) or "- none",
        "## Rows through the pipeline",
        _table(
            ["stage", "rows in", "rows out", "dropped"],
            [(f.stage, f.rows_in, f.rows_out, f.rejected) for f in inputs.funnel],
        ),
        "## Reject reasons",
        _table(["stage / reason", "rows"], rejects) if inputs.rejects else "No rows were rejected.",
    ]
    if inputs.cost:
        parts += ["## Generation cost", *_cost(inputs.cost, inputs.gpu_rates)]
    if inputs.columns:
        parts += ["## Metadata columns", _table(["column", "meaning"], inputs.columns.items())]
    return "\n\n".join(parts) + "\n"


def _cost(rows: list[CostRow], rates: GpuRates) -> list[str]:
    """The LLM stages' measured spend and its GPU estimate, in total and per pair of this dataset."""
    kept = rows[-1].kept

    def per(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    table = _table(
        ["stage", "requests", "prompt tokens", "cached prompt tokens", "generated tokens", "server-seconds",
         "generated tokens / pair", "server-seconds / pair", "est. GPU-hours", "est. $"],
        [(r.spend.stage, r.spend.requests, r.spend.prompt_tokens, r.spend.cached_tokens, r.spend.completion_tokens,
          f"{r.spend.server_s:,.1f}", per(r.completion_tokens_per_pair, ",.1f"), per(r.server_s_per_pair, ",.2f"),
          f"{r.gpu_hours:.3g}", f"{r.usd:.3g}") for r in rows],
    )  # fmt: skip
    usd = rows[-1].usd_per_pair
    estimate = f" About ${usd * 1e6:,.2f} per million pairs at these rates." if usd is not None else ""
    return [
        f"What the LLM requests behind these {kept:,} pairs cost, from the request ledger (every request of the "
        "run, also those whose pair was rejected). Server-seconds were measured on the servers that answered; "
        f"GPU-hours and $ are estimated from the tokens at {rates.gen_tokens_per_s:,.0f} generated and "
        f"{rates.prefill_tokens_per_s:,.0f} uncached prompt tokens per second per GPU and "
        f"${rates.usd_per_gpu_hour:g} per GPU-hour; prompt tokens served from the prefix cache cost no prefill."
        + estimate,
        table,
    ]


RELEASED_LICENSES = {  # the paper's models (conf/fineinstructions.yaml), as their cards state them
    "flowaicom/Flow-Judge-v0.1": "Apache-2.0 (flowaicom/Flow-Judge-v0.1)",
    "fineinstructions/query_templatizer": "none declared on its model card: decide on use before publishing",
    "fineinstructions/template_instantiator": "none declared on its model card: decide on use before publishing",
}


def _model_license(model: str | None) -> str:
    """The license of a model fi-spark serves locally (fi_spark.config.LOCAL_MODELS) or of one of the paper's
    released models; else the user's to state."""
    from fi_spark.config.llm import LOCAL_MODELS

    known = {m.served_model_name: m.license for m in LOCAL_MODELS.values()} | RELEASED_LICENSES
    return known.get(model or "", "see the model's own card")


def _roles(inputs: CardInputs) -> list[str]:
    return list(dict.fromkeys([*inputs.models, *inputs.prompts]))
