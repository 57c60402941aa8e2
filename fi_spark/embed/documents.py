"""Document vectors inside a Spark partition: chunk (or whole-document token) embeddings -> coverage-pooled vectors.

The match stage repartitions chunks by doc_id, so every chunk of a document sits in one partition, and
each row carries its document's number of rows (`n_units`). mapInPandas hands us Arrow batches that may cut
a document in two and, on some engines, interleave documents: Sail drops a `sortWithinPartitions` whose
consumer is mapInPandas (its physical plan has no sort), so at 100k documents, read from many files, the
chunks of one document arrived in separate batches with other documents between them. `complete_documents`
therefore keeps the rows of each unfinished document until all `n_units` of them are in, then yields it,
whatever order the rows came in; the encoder still sees large batches (throughput comes from batching across
documents, not from per-document calls). A document whose rows never all arrive (an engine that broke the
hash partitioning) stops the task with an error instead of being pooled from half its chunks.

For each pooled vector we also name the chunk it stands for, the text the instantiator will see:
for region j the chunk nearest its centre (the largest Gaussian weight), for the global vector the
chunk most similar to it (the most representative chunk).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from fi_spark.config.embed import EmbedConfig
from fi_spark.embed.encoder import encode, encode_windows
from fi_spark.embed.pooling import gaussian_coverage_pool, pool_windows


@dataclass
class DocVectors:
    """Pooled vectors of a batch of documents, one entry per vector."""

    doc_ids: list[str] = field(default_factory=list)
    regions: list[int] = field(default_factory=list)
    centres: list[float] = field(default_factory=list)
    chunk_ids: list[str | None] = field(default_factory=list)
    char_starts: list[int | None] = field(default_factory=list)
    char_ends: list[int | None] = field(default_factory=list)
    vectors: list[npt.NDArray[np.float32]] = field(default_factory=list)

    def matrix(self, dim: int) -> npt.NDArray[np.float32]:
        return np.vstack(self.vectors).astype(np.float32) if self.vectors else np.zeros((0, dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.doc_ids)


def complete_documents(
    batches: Iterable[pd.DataFrame], key: str = "doc_id", count: str = "n_units"
) -> Iterator[pd.DataFrame]:
    """Re-cut a stream of row batches into frames of whole documents: a document is yielded once `count` (its
    number of rows, carried on every row) of its rows have arrived, in any order and across any batches."""
    carry: pd.DataFrame | None = None
    for batch in batches:
        if carry is not None and len(carry):
            batch = pd.concat([carry, batch], ignore_index=True)
        if not len(batch):
            continue
        groups = batch.groupby(key, sort=False)[count]
        have, need = groups.transform("size"), groups.transform("first")
        if bool((have > need).any()):
            extra = batch.loc[have > need, key].iloc[0]
            raise RuntimeError(f"{key} {extra} has more rows than its {count} says: the input holds duplicate rows")
        done = (have == need).to_numpy()
        carry = batch[~done]
        if done.any():
            yield batch[done].reset_index(drop=True)
    if carry is not None and len(carry):
        missing = carry[key].nunique()
        raise RuntimeError(
            f"{missing} document(s) in this partition never got all their rows (first: {carry[key].iloc[0]}): "
            f"the input must be repartitioned by {key} so every row of a document lands in one partition"
        )


def pool_chunks(chunks: pd.DataFrame, model: Any, cfg: EmbedConfig) -> DocVectors:
    """Chunks of complete documents (doc_id, chunk_id, ordinal, char_start, char_end, text, n_tokens) -> vectors."""
    out = DocVectors()
    if not len(chunks):
        return out
    chunks = chunks.sort_values(["doc_id", "ordinal"], kind="stable").reset_index(drop=True)
    emb = encode(model, chunks["text"].astype(str).tolist(), cfg.batch_size)
    starts = chunks["char_start"].to_numpy(dtype=np.float64)
    ends = chunks["char_end"].to_numpy(dtype=np.float64)
    tokens = chunks["n_tokens"].to_numpy(dtype=np.float64)
    doc_ids = chunks["doc_id"].to_numpy()
    bounds = np.append(np.flatnonzero(np.r_[True, doc_ids[1:] != doc_ids[:-1]]), len(chunks))
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        doc_len = max(float(ends[lo:hi].max()), 1.0)
        positions = (starts[lo:hi] + ends[lo:hi]) / 2.0 / doc_len
        vecs, centres = gaussian_coverage_pool(
            emb[lo:hi], cfg.regions, cfg.sigma, cfg.alpha, positions, tokens[lo:hi], cfg.min_units_for_regions
        )
        best_global = int(np.argmax(emb[lo:hi] @ vecs[0]))
        for r in range(len(vecs)):
            pick = lo + (best_global if r == 0 else int(np.argmin(np.abs(positions - centres[r]))))
            out.doc_ids.append(str(chunks.at[lo, "doc_id"]))
            out.regions.append(r)
            out.centres.append(float(centres[r]))
            out.chunk_ids.append(str(chunks.at[pick, "chunk_id"]))
            out.char_starts.append(int(starts[pick]))
            out.char_ends.append(int(ends[pick]))
            out.vectors.append(vecs[r])
    return out


def pool_tokens(docs: pd.DataFrame, model: Any, cfg: EmbedConfig) -> DocVectors:
    """Documents (doc_id, text) -> vectors pooled over the token embeddings of the whole document.

    Long documents are read in overlapping windows (fi_spark.embed.encoder.encode_windows), so the regions
    cover the whole text; a document with no token at all gets no vector (match rejects it as no_chunks).
    Vectors name no chunk: the instantiator reads the document (instantiate.source=document) or, with chunk
    sources, the whole document cut to max_source_chars.
    """
    out = DocVectors()
    if not len(docs):
        return out
    texts = docs["text"].astype(str).tolist()
    encoded = encode_windows(model, texts, cfg.batch_size, cfg.window_overlap, cfg.max_batch_tokens)
    for doc_id, (n_tokens, windows) in zip(docs["doc_id"].astype(str), encoded, strict=True):
        if n_tokens == 0:
            continue
        vecs, centres = pool_windows(n_tokens, windows, cfg.regions, cfg.sigma, cfg.alpha, cfg.min_units_for_regions)
        for r in range(len(vecs)):
            out.doc_ids.append(doc_id)
            out.regions.append(r)
            out.centres.append(float(centres[r]))
            out.chunk_ids.append(None)
            out.char_starts.append(None)
            out.char_ends.append(None)
            out.vectors.append(vecs[r])
    return out
