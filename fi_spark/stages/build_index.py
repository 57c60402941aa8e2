"""Stage `build_index`: templates -> template_vectors -> a versioned FAISS index artifact.

1. Embed the compatible-document description of every template that has no vector yet for
   `embed.model` at `embed.revision` (`EmbedConfig.identity`; mapInPandas, one encoder per worker process)
   -> `template_vectors`, pooled as the documents are (`embed_texts`). Vectors are
   kept in a table so changing index settings, or adding a few templates, never re-embeds the bank.
2. Bring the bank's vectors to the driver, sorted by template_id, and build the index there: a FAISS
   index is one in-memory structure, so this is the one place where the bank (not the corpus) is
   collected. Vectors travel as float32 bytes (1.5 KB per template at 384-d), streamed with
   toLocalIterator so the driver holds the matrix once.
3. The artifact version is a content hash of (ids, vectors, model, index settings): if it exists the
   build is skipped. recall@k against exact search on a held-back sample goes into the manifest and
   the stage metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.config import EmbedConfig, IndexConfig
from fi_spark.embed.encoder import encode, encode_windows, load_encoder, require_encoder_packages
from fi_spark.embed.placement import on_encoder_thread
from fi_spark.embed.pooling import pool_windows
from fi_spark.index.artifact import IndexArtifact, artifact_version, find_artifact, save_artifact, set_latest
from fi_spark.index.build import build_index, choose_index, held_back_sample, recall_at_k
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
    ids, matrix = collect_vectors(vectors.join(templates.select("template_id"), "template_id", "left_semi"))
    if not ids:
        raise ValueError("build_index: the templates table is empty; nothing to index")
    artifact, built_s = build_artifact(ids, matrix, cfg.embed, cfg.index, index_root(ctx))
    m = artifact.manifest
    ctx.log.info("%s: index %s (%s, %d templates, recall@%d %.3f)", STAGE, artifact.version, m["factory"], len(ids),
                 cfg.index.recall_k, m["recall_at_k"])  # fmt: skip
    result = StageResult(
        STAGE, rows_in=len(ids), rows_out=len(ids), tables={TEMPLATE_VECTORS.name: added},
        seconds=time.monotonic() - started,
    )  # fmt: skip
    result.metrics.update(
        {
            "templates_indexed": float(len(ids)),
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
    params = {
        "model": embed.identity(),
        "factory": plan.factory,
        **cfg.model_dump(include={"nprobe", "hnsw_ef_construction", "hnsw_ef_search", "train_sample", "seed"}),
    }
    version = artifact_version(ids, matrix, params)
    found = find_artifact(root, version)
    if found is not None:
        set_latest(root, version)
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
