"""Stage `build_index`: templates -> template_vectors -> a versioned FAISS index artifact.

1. Embed the compatible-document description of every template that has no vector yet for
   `embed.model` at `embed.revision` (`EmbedConfig.identity`; mapInPandas, one encoder per worker process)
   -> `template_vectors`, pooled as the documents are (`embed_texts`). Vectors are
   kept in a table so changing index settings, or adding a few templates, never re-embeds the bank.
2. Build the index the bank's size calls for (fi_spark.index.build.choose_index):
   - exact Flat or HNSW (smaller banks): the vectors come to the driver, sorted by
     template_id, streamed with toLocalIterator as float32 bytes so the driver holds the matrix once
     (1.5 KB per template at 384-d), and the index is built there in one call;
   - IVF-PQ (above compress_min, or above flat_max with large_type=ivfpq; ~18M x 1024-d in the paper: 73 GB
     as float32): nothing data-sized reaches the driver. A hash of (template_id, seed) splits off the recall
     queries (index.recall_sample) and a training sample (64 vectors per IVF list, at most
     index.train_sample); the index is trained on that sample, then template_vectors stream through
     toLocalIterator in batches of index.add_batch, each added to the index, scored exactly against the
     recall queries (the ground truth, kept as top-k ids only) and its ids written to the artifact's id file.
     The driver holds one batch, the sample and the compressed index (128 bytes per template at 1024-d).
     Rows keep the order Spark streams them in (no sort of the bank).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.config.embed import EmbedConfig
from fi_spark.config.index import IndexConfig
from fi_spark.embed.encoder import encode, encode_windows, load_encoder, require_encoder_packages
from fi_spark.embed.placement import on_encoder_thread
from fi_spark.embed.pooling import pool_windows
from fi_spark.index.artifact import (
    IndexArtifact,
    artifact_version,
    find_artifact,
    save_artifact,
    save_artifact_files,
    set_latest,
)
from fi_spark.index.build import (
    ExactTopK,
    IndexBuilder,
    IndexPlan,
    build_index,
    choose_index,
    held_back_sample,
    recall_at_k,
    train_size,
)
from fi_spark.schemas import TEMPLATE_VECTORS, TEMPLATES
from fi_spark.stages.base import StageContext, StageResult, StageTables

STAGE = "build_index"
TABLES = StageTables(reads=(TEMPLATES,), writes=(TEMPLATE_VECTORS,))  # and the index artifact (not a table)
VECTOR_DDL = "template_id string, model string, vector binary, dim int"


def index_root(ctx: StageContext) -> str:
    """Where index artifacts live: index.location, else <output>/index."""
    return ctx.config.index.location or storage.join(ctx.output, "index")


def run(ctx: StageContext) -> StageResult:
    started = time.monotonic()
    require_encoder_packages()
    cfg = ctx.config
    if not ctx.store.exists(TEMPLATES):
        raise ValueError("build_index needs the `templates` table: run genericize or import_templates first")
    templates = ctx.store.read(TEMPLATES).select("template_id", "compatible_doc_description")
    stored = ctx.store.read(TEMPLATE_VECTORS).where(F.col("model") == cfg.embed.identity())
    missing = templates.join(stored.select("template_id"), "template_id", "left_anti")
    added = ctx.store.write(embed_descriptions(missing, cfg.embed), TEMPLATE_VECTORS)
    ctx.log.info("%s: embedded %d new template descriptions with %s", STAGE, added, cfg.embed.identity())

    vectors = ctx.store.read(TEMPLATE_VECTORS).where(F.col("model") == cfg.embed.identity())
    vectors = vectors.join(templates.select("template_id"), "template_id", "left_semi")
    n = vectors.count()
    if not n:
        raise ValueError("build_index: the templates table is empty; nothing to index")
    dim = int(vectors.select("dim").head(1)[0]["dim"])
    plan = choose_index(n, dim, cfg.index)
    if plan.kind == "ivfpq":
        artifact, built_s = stream_artifact(vectors, n, dim, plan, cfg.embed, cfg.index, index_root(ctx))
    else:
        ids, matrix = collect_vectors(vectors)
        artifact, built_s = build_artifact(ids, matrix, cfg.embed, cfg.index, index_root(ctx))
    m = artifact.manifest
    ctx.log.info("%s: index %s (%s, %d templates, recall@%d %.3f)", STAGE, artifact.version, m["factory"], n,
                 cfg.index.recall_k, m["recall_at_k"])  # fmt: skip
    result = StageResult(
        STAGE, rows_in=n, rows_out=n, tables={TEMPLATE_VECTORS.name: added}, seconds=time.monotonic() - started
    )
    result.metrics.update(
        {
            "templates_indexed": float(n),
            "vectors_embedded": float(added),
            f"recall_at_{cfg.index.recall_k}": float(m["recall_at_k"]),
            "index_bytes": float(m["bytes"]),
            "index_build_s": built_s,
            "index_reused": float(built_s == 0.0),
        }
    )
    if not storage.is_remote(artifact.uri):  # MLflow artifacts are local files; an s3:// index is named by params
        result.artifacts["index_manifest"] = storage.join(artifact.uri, "manifest.json")
    return result


def embed_descriptions(templates: DataFrame, cfg: EmbedConfig) -> DataFrame:
    """(template_id, compatible_doc_description) -> TEMPLATE_VECTORS rows, batch-encoded per partition."""
    return templates.mapInPandas(partial(_embed_batches, cfg), VECTOR_DDL)


def _embed_batches(cfg: EmbedConfig, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    model = load_encoder(cfg)
    for batch in batches:  # on the process's one encoder thread: a thread per task grew memory per task
        texts = batch["compatible_doc_description"].astype(str).tolist()
        vecs = on_encoder_thread(embed_texts, model, texts, cfg)
        yield pd.DataFrame(
            {
                "template_id": batch["template_id"],
                "model": cfg.identity(),
                "vector": [v.astype("<f4").tobytes() for v in vecs],
                "dim": np.int32(vecs.shape[1]),
            }
        )


def embed_texts(model: Any, texts: list[str], cfg: EmbedConfig) -> np.ndarray:
    """Description vectors in the documents' space: the model's own pooling, or with token pooling the same
    pooling's global vector (the mean of the description's tokens), so both sides are pooled alike."""
    if cfg.pooling_unit != "tokens":
        return encode(model, texts, cfg.batch_size)
    encoded = encode_windows(model, texts, cfg.batch_size, cfg.window_overlap, cfg.max_batch_tokens)
    dim = model.get_sentence_embedding_dimension()
    return np.vstack(
        [pool_windows(n, w, 0, cfg.sigma, cfg.alpha)[0] if n else np.zeros((1, dim), np.float32) for n, w in encoded]
    ).astype(np.float32)


def collect_vectors(vectors: DataFrame) -> tuple[list[str], np.ndarray]:
    """Template ids (sorted) and their (n, d) float32 matrix, streamed to the driver."""
    ids: list[str] = []
    rows: list[bytes] = []
    for row in vectors.select("template_id", "vector").orderBy("template_id").toLocalIterator():
        ids.append(row["template_id"])
        rows.append(bytes(row["vector"]))
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return ids, np.frombuffer(b"".join(rows), dtype="<f4").reshape(len(rows), -1).astype(np.float32)


def build_artifact(
    ids: list[str], matrix: np.ndarray, embed: EmbedConfig, cfg: IndexConfig, root: str
) -> tuple[IndexArtifact, float]:
    """Find or build+save the artifact for these vectors; returns it and the build seconds (0 if reused)."""
    plan = choose_index(len(ids), matrix.shape[1], cfg)
    params = build_params(plan, embed, cfg)
    version = artifact_version(ids, matrix, params)
    found = reuse_artifact(root, version)
    if found is not None:
        return found, 0.0
    started = time.monotonic()
    sample = held_back_sample(len(ids), cfg.recall_sample, cfg.seed)
    index = build_index(matrix, cfg, plan, holdout=sample)
    build_s = time.monotonic() - started
    recall = recall_at_k(index, matrix, matrix[sample], cfg.recall_k) if plan.kind != "flat" else 1.0
    manifest = {
        **params,
        "kind": plan.kind,
        "recall_at_k": recall,
        "recall_k": cfg.recall_k,
        "recall_queries": int(len(sample)),
        "build_seconds": round(build_s, 3),
    }
    return save_artifact(index, ids, manifest, root, version), max(build_s, 1e-6)


def reuse_artifact(root: str, version: str) -> IndexArtifact | None:
    """The artifact already built for `version` (same vectors and settings), made the latest again; else None."""
    found = find_artifact(root, version)
    if found is not None:
        set_latest(root, version)
    return found


def build_params(plan: IndexPlan, embed: EmbedConfig, cfg: IndexConfig) -> dict[str, Any]:
    """What besides the vectors determines an index (part of its version and manifest)."""
    return {
        "model": embed.identity(),
        "factory": plan.factory,
        **cfg.model_dump(include={"nprobe", "hnsw_ef_construction", "hnsw_ef_search", "train_sample", "seed"}),
    }


def stream_artifact(
    vectors: DataFrame, n: int, dim: int, plan: IndexPlan, embed: EmbedConfig, cfg: IndexConfig, root: str
) -> tuple[IndexArtifact, float]:
    """Find or build+save a trained (IVF-PQ) index over `vectors` without collecting them (module docstring, 2)."""
    params = build_params(plan, embed, cfg)
    version = streamed_version(vectors, n, params)
    found = reuse_artifact(root, version)
    if found is not None:
        return found, 0.0
    started = time.monotonic()
    share = _share(cfg.seed)
    held = min(0.5, 1.2 * cfg.recall_sample / n)
    want = train_size(plan, n, cfg)
    queries = _matrix(vectors.where(share < held).limit(cfg.recall_sample), dim)
    sample = vectors.where((share >= held) & (share < held + 1.2 * want / n)).limit(want)
    builder = IndexBuilder(plan, dim, cfg)
    train = _matrix(sample, dim)
    builder.train(train)
    exact = ExactTopK(queries, cfg.recall_k)
    with tempfile.TemporaryDirectory(prefix="fi-index-ids-") as tmp:
        ids_file = Path(tmp, "ids.txt")
        added = 0
        with ids_file.open("w", encoding="utf-8") as out:
            for ids, batch in _batches(vectors, dim, cfg.add_batch):
                builder.add(batch)
                exact.update(batch)
                out.write(("\n" if added else "") + "\n".join(ids))
                added += len(ids)
        index = builder.finish()
        build_s = time.monotonic() - started
        manifest = {
            **params,
            "kind": plan.kind,
            "recall_at_k": exact.recall(index),
            "recall_k": cfg.recall_k,
            "recall_queries": int(queries.shape[0]),
            "train_vectors": int(train.shape[0]),
            "build_seconds": round(build_s, 3),
            "streamed": True,
        }
        return save_artifact_files(index, ids_file, added, manifest, root, version), max(build_s, 1e-6)


def streamed_version(vectors: DataFrame, n: int, params: dict[str, Any]) -> str:
    """Content hash (16 hex digits) of a bank too large to collect: params, count and two order-free sums of
    per-row hashes of (template_id, vector), computed in Spark (decimal sums cannot overflow)."""
    sums = vectors.agg(
        F.sum(F.xxhash64("template_id", "vector").cast("decimal(38,0)")).alias("x"),
        F.sum(F.hash("template_id", "vector").cast("decimal(38,0)")).alias("m"),
    ).head(1)[0]
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode("utf-8"))
    h.update(f"\0streamed\0{n}\0{sums['x']}\0{sums['m']}".encode())
    return h.hexdigest()[:16]


def _share(seed: int) -> Any:
    """A deterministic pseudo-random number in [0, 1) per template (a Column): which sample a row falls in."""
    return F.pmod(F.xxhash64("template_id", F.lit(seed)), F.lit(1_000_000)) / F.lit(1_000_000.0)


def _matrix(rows: DataFrame, dim: int) -> np.ndarray:
    """A bounded sample's vectors as an (n, dim) float32 matrix."""
    data = [bytes(r["vector"]) for r in rows.select("vector").collect()]
    return np.frombuffer(b"".join(data), dtype="<f4").reshape(len(data), dim).astype(np.float32)


def _batches(vectors: DataFrame, dim: int, size: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """(template ids, (b, dim) float32 matrix) batches of the bank, streamed with toLocalIterator."""
    ids: list[str] = []
    rows: list[bytes] = []
    for row in vectors.select("template_id", "vector").toLocalIterator():
        ids.append(row["template_id"])
        rows.append(bytes(row["vector"]))
        if len(ids) == size:
            yield ids, np.frombuffer(b"".join(rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)
            ids, rows = [], []
    if ids:
        yield ids, np.frombuffer(b"".join(rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)
