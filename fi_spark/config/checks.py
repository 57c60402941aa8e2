"""Checks across sections of a profile, run when it is loaded and when the engine starts.

Each section validates its own keys (fi_spark.section); what no single section can see is whether
its values fit together. A mismatch here does not fail loudly on its own -- it silently costs quality:

- chunks longer than the embedder's window are cut before they are embedded, so the end of every
  chunk is never matched (`prepare.chunk_tokens` vs `embed.model` / `embed.max_seq_length`);
- chunks counted with one model's tokenizer and embedded by another's come out at a different
  length than planned (`prepare.tokenizer` vs `embed.model`): BGE-M3 tokens at 512 are ~600 MiniLM
  tokens, over MiniLM's 256-token window;
- a judge shown less of the document than the instantiator (`instantiate.source=document`) marks
  answers from the unseen part as ungrounded (`judge.max_source_chars` vs `instantiate.max_source_chars`);
- a delta-spark jar built for another Spark or Scala than the cluster's fails at the first Delta
  write, after the run has spent its time (`engine.delta_package` vs the running Spark).

Only names we know are judged (the table below and local model folders, whose own config states
their window); an unknown hub name passes, since guessing would refuse a good profile. Each mismatch
is one sentence naming the keys and the fix; `load_config` raises them as one ConfigError.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fi_spark.config.model import Config

# name -> (tokenizer family, window in tokens or None when not known). The fineinstructions models are
# fine-tuned from BGE-M3 and keep its tokenizer (their model cards; the released retriever's helper).
KNOWN_MODELS: dict[str, tuple[str, int | None]] = {
    "minilm": ("minilm", 256),
    "sentence-transformers/all-minilm-l6-v2": ("minilm", 256),
    "baai/bge-m3": ("bge-m3", 8192),
    "fineinstructions/matching_embedding": ("bge-m3", None),
    "fineinstructions/instruction_template_retrieval_embedding": ("bge-m3", None),
}
# Spark (major, minor) -> its default Scala and the delta-spark line built for it (Delta's release notes:
# Delta 3.x is built on Spark 3.5, Delta 4.0 on Spark 4.0).
SPARK_SCALA = {(3, 5): "2.12", (4, 0): "2.13"}
DELTA_FOR_SPARK = {(3, 5): "3.2.0", (4, 0): "4.0.0"}
_COORD = re.compile(r"^\s*io\.delta:(delta-spark|delta-core)_(\d+\.\d+):(\d+)\.(\d+)(?:\.\d+)?\S*\s*$")


def embedder_family(name: str) -> str | None:
    return _known(name)[0]


def embedder_window(name: str, max_seq_length: int | None = None) -> int | None:
    """Tokens the encoder reads: embed.max_seq_length when set, else the known or folder-stated window."""
    if max_seq_length:
        return max_seq_length
    window = _known(name)[1]
    if window is None and Path(name).expanduser().is_dir():
        config = Path(name).expanduser() / "sentence_bert_config.json"
        if config.is_file():
            value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
            window = int(value) if isinstance(value, int) else None
    return window


def check_profile(cfg: Config) -> list[str]:
    """One sentence per mismatch between sections of `cfg` (empty: consistent)."""
    problems: list[str] = []
    model, tokenizer = cfg.embed.model, cfg.prepare.tokenizer
    emb_family, tok_family = embedder_family(model), embedder_family(tokenizer)
    if emb_family and tok_family and emb_family != tok_family:
        problems.append(
            f"prepare.tokenizer={tokenizer} counts chunks in {tok_family} tokens but embed.model={model} embeds with "
            f"the {emb_family} tokenizer; set prepare.tokenizer to the embedder's tokenizer ({_tokenizer_for(model)})."
        )
    window = embedder_window(model, cfg.embed.max_seq_length)
    if cfg.embed.pooling_unit == "chunks" and window is not None and cfg.prepare.chunk_tokens > window:
        problems.append(
            f"prepare.chunk_tokens={cfg.prepare.chunk_tokens} is longer than the {window}-token window of "
            f"embed.model={model}, so every chunk would be cut before it is embedded; set prepare.chunk_tokens "
            f"<= {window}."
        )
    shown, judged = cfg.instantiate.max_source_chars, cfg.judge.max_source_chars
    if cfg.instantiate.source == "document" and judged < shown:
        problems.append(
            f"judge.max_source_chars={judged} is smaller than instantiate.max_source_chars={shown}, so the judge "
            f"would not see all of the document the instantiator answered from; set judge.max_source_chars={shown}."
        )
    if cfg.engine.delta_package:
        problems.extend(check_delta_package(cfg.engine.delta_package))
    return problems


def check_delta_package(coordinate: str, spark_version: str | None = None) -> list[str]:
    """Mismatches of a delta-spark Maven coordinate with itself and, when given, with the running Spark."""
    key = f"engine.delta_package={coordinate.strip()}"
    m = _COORD.match(coordinate)
    if not m:
        return [f"{key} is not a delta-spark Maven coordinate; name one like io.delta:delta-spark_2.12:3.2.0."]
    scala, delta = m.group(2), (int(m.group(3)), int(m.group(4)))
    built_for = {3: (3, 5), 4: (4, 0)}.get(delta[0])
    if built_for is None:
        return [
            f"{key} is Delta {delta[0]}.{delta[1]}, built for a Spark fi-spark does not run (3.5 or 4.0); "
            f"name {_delta_coordinate((3, 5))} (Spark 3.5) or {_delta_coordinate((4, 0))} (Spark 4.0)."
        ]
    problems: list[str] = []
    if delta[0] == 4 and scala != "2.13":
        problems.append(f"{key} names Scala {scala}, but Delta 4.x is published for Scala 2.13 only.")
    spark = _spark_minor(spark_version)
    if spark is None:
        return problems
    if built_for != spark:
        problems.append(
            f"{key} is Delta {delta[0]}.{delta[1]}, built for Spark {built_for[0]}.{built_for[1]}, but this cluster "
            f"runs Spark {spark_version}; name {_delta_coordinate(spark)}."
        )
    default_scala = SPARK_SCALA.get(spark)
    if default_scala and scala != default_scala:
        problems.append(
            f"{key} is built for Scala {scala}, but Spark {spark_version} runs Scala {default_scala}; "
            f"name {_delta_coordinate(spark)}."
        )
    return problems


def _delta_coordinate(spark: tuple[int, int]) -> str:
    return f"io.delta:delta-spark_{SPARK_SCALA[spark]}:{DELTA_FOR_SPARK[spark]}"


def _spark_minor(version: str | None) -> tuple[int, int] | None:
    m = re.match(r"\s*(\d+)\.(\d+)", version or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _known(name: str) -> tuple[str | None, int | None]:
    family, window = KNOWN_MODELS.get(name.strip().lower(), (None, None))
    if family is None and "minilm" in Path(name).as_posix().lower() and "tokenizer.json" in name:
        family = "minilm"  # the packaged MiniLM tokenizer.json named by its path
    return family, window


def _tokenizer_for(model: str) -> str:
    return {"minilm": "minilm", "bge-m3": "BAAI/bge-m3"}.get(embedder_family(model) or "", model)
