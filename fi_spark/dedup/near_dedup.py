"""Near-duplicate removal as a DataFrame transform: documents in; kept documents, clusters, duplicates out.

Steps (each a DataFrame; the Python work runs in mapInPandas / pandas UDFs, one MinHasher per batch
stream, so per-row Python is never needed):
1. signatures -- MinHash of each document's shingles and its LSH band keys (fi_spark.dedup.minhash,
   fi_spark.dedup.lsh); documents without a shingle (empty, or short with short_docs='skip') take no
   part and are counted.
2. candidates -- documents sharing a (band, key) bucket; each member is linked to the bucket's smallest
   doc_id (a star, so a bucket of k documents gives k-1 edges, not k^2/2).
3. verification (``verify``) -- keep an edge when the estimated Jaccard of the two signatures
   (``signature``) or the exact Jaccard of the two shingle sets (``exact``) reaches the threshold;
   ``none`` keeps every candidate, as DataTrove does. Measured (bench/dedup_quality.py): with exact
   verification the LSH banding can favour recall (recall_weight 0.95 -> 14 x 8 at 0.8 / 112) and
   still keep precision at 1.0; without verification the same banding merges pairs down to J ~ 0.5.
4. clusters -- connected components in Spark (fi_spark.dedup.components); cluster_id = smallest doc_id.
5. survivor -- one per cluster by ``survivor``: smallest id, longest text, or best quality score
   (fi_spark.text.web_quality.quality_score); ties always fall to the smallest doc_id, and documents
   stored by earlier runs (``stored``) come first, so a re-run never turns a stored document into a
   duplicate.
6. similarity -- every member's Jaccard to its survivor for the dup_clusters table: exact when
   ``verify='exact'`` (the default), else estimated from the signatures.

Every step is a function of the documents alone (no order, partitioning or engine dependence): the
integration tests check identical output across partition counts and on Sail and classic Spark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType

from fi_spark.config.dedup import NearDedupConfig
from fi_spark.dedup.components import Checkpoint, connected_components
from fi_spark.dedup.lsh import band_keys, resolve_bands
from fi_spark.dedup.minhash import MinHasher, jaccard
from fi_spark.text.web_quality import quality_score

SIGNATURE_DDL = "doc_id string, status string, n_shingles long, sig binary, keys array<bigint>"


@dataclass
class NearDedupResult:
    kept: DataFrame  # the input rows that survive (same columns as the input)
    clusters: DataFrame  # DUP_CLUSTERS rows: cluster_id, doc_id, kept, similarity
    duplicates: DataFrame  # DUPLICATES rows: doc_id, kept_id, method='minhash', similarity
    signatures: DataFrame  # doc_id, status (ok / short / empty), n_shingles, sig, keys -- for metrics
    bands: int
    rows: int
    rounds: int  # connected-components rounds used


def hasher_for(cfg: NearDedupConfig) -> MinHasher:
    return MinHasher(num_perm=cfg.num_perm, ngram=cfg.ngram, unit=cfg.shingle, short_docs=cfg.short_docs, seed=cfg.seed)


def signatures(docs: DataFrame, cfg: NearDedupConfig, bands: int, rows: int) -> DataFrame:
    """(doc_id, status, n_shingles, sig, keys) for (doc_id, text) rows; sig/keys are null without a shingle."""
    settings = (cfg.num_perm, cfg.ngram, cfg.shingle, cfg.short_docs, cfg.seed)

    def sign(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        hasher = MinHasher(*settings)  # type: ignore[arg-type]
        for batch in batches:
            texts = [t or "" for t in batch["text"]]
            sig = hasher.signatures(texts)
            keys = band_keys(sig.values, bands, rows)
            has = sig.n_shingles > 0
            yield pd.DataFrame(
                {
                    "doc_id": batch["doc_id"].to_numpy(),
                    "status": sig.status,
                    "n_shingles": sig.n_shingles,
                    "sig": [v.astype("<u4").tobytes() if h else None for v, h in zip(sig.values, has, strict=True)],
                    "keys": [k if h else None for k, h in zip(keys, has, strict=True)],
                }
            )

    return docs.select("doc_id", "text").mapInPandas(sign, SIGNATURE_DDL)  # type: ignore[arg-type]


def candidate_edges(sigs: DataFrame) -> DataFrame:
    """(src, dst): every member of an LSH bucket linked to the bucket's smallest doc_id.

    Buckets are aggregated first (hash aggregation, no sort) and only those with two or more members
    are joined back: nearly every bucket holds a single document, so the join side stays small.
    """
    buckets = sigs.filter(F.col("keys").isNotNull()).select("doc_id", F.posexplode("keys").alias("band", "key"))
    shared = (
        buckets.groupBy("band", "key")
        .agg(F.min("doc_id").alias("center"), F.count("*").alias("size"))
        .filter(F.col("size") > 1)
        .drop("size")
    )
    linked = buckets.join(shared, ["band", "key"]).filter(F.col("doc_id") != F.col("center"))
    return linked.select(F.col("doc_id").alias("src"), F.col("center").alias("dst")).distinct()


def agreement(a: pd.Series, b: pd.Series) -> pd.Series:
    """Estimated Jaccard: share of equal positions of two little-endian uint32 signatures."""
    out = np.empty(len(a), dtype=np.float64)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        out[i] = np.mean(np.frombuffer(x, dtype="<u4") == np.frombuffer(y, dtype="<u4"))
    return pd.Series(out)


def signature_agreement(a: str, b: str) -> Column:
    # UDF objects are built at call time: built at import, pyspark would bind them to classic Spark
    # even when the session is Spark Connect (Sail).
    return F.pandas_udf(agreement, DoubleType())(a, b)  # type: ignore[call-overload]


def verify_edges(edges: DataFrame, sigs: DataFrame, docs: DataFrame, cfg: NearDedupConfig) -> DataFrame:
    """Edges whose similarity reaches the threshold, with a ``similarity`` column (null for verify='none')."""
    if cfg.verify == "none":
        return edges.withColumn("similarity", F.lit(None).cast("double"))
    if cfg.verify == "signature":
        left = sigs.select(F.col("doc_id").alias("src"), F.col("sig").alias("sig_src"))
        right = sigs.select(F.col("doc_id").alias("dst"), F.col("sig").alias("sig_dst"))
        scored = edges.join(left, "src").join(right, "dst")
        scored = scored.withColumn("similarity", signature_agreement("sig_src", "sig_dst"))
    else:
        left = docs.select(F.col("doc_id").alias("src"), F.col("text").alias("text_src"))
        right = docs.select(F.col("doc_id").alias("dst"), F.col("text").alias("text_dst"))
        scored = edges.join(left, "src").join(right, "dst")
        scored = scored.withColumn("similarity", _exact_jaccard_udf(cfg)("text_src", "text_dst"))
    return scored.filter(F.col("similarity") >= F.lit(cfg.threshold)).select("src", "dst", "similarity")


def _exact_jaccard_udf(cfg: NearDedupConfig) -> Callable[..., Column]:
    settings = (cfg.num_perm, cfg.ngram, cfg.shingle, cfg.short_docs, cfg.seed)

    def exact_jaccard(a: pd.Series, b: pd.Series) -> pd.Series:
        hasher = MinHasher(*settings)  # type: ignore[arg-type]
        return pd.Series([jaccard(hasher.shingle_ids(x), hasher.shingle_ids(y)) for x, y in zip(a, b, strict=True)])

    return F.pandas_udf(exact_jaccard, DoubleType())  # type: ignore[call-overload]


def quality_scores(texts: pd.Series) -> pd.Series:
    return pd.Series([quality_score(t or "") for t in texts], dtype="float64")


def quality_score_udf(text: str) -> Column:
    return F.pandas_udf(quality_scores, DoubleType())(text)  # type: ignore[call-overload]


def survivor_order(cfg: NearDedupConfig) -> list[Column]:
    """Window ordering that puts each cluster's survivor first (stored documents, then the rule, then doc_id)."""
    rule = {
        "smallest_id": [],
        "longest": [F.col("n_chars").desc()],
        "best_quality": [F.col("quality").desc()],
    }[cfg.survivor]
    return [F.col("stored").desc(), *rule, F.col("doc_id").asc()]


def near_dedup(
    docs: DataFrame,
    cfg: NearDedupConfig,
    checkpoint: Checkpoint,
    stored: DataFrame | None = None,
) -> NearDedupResult:
    """Remove near-duplicates from ``docs`` (doc_id, text, ... ; n_chars used by survivor='longest').

    ``stored``: (doc_id, text) of documents kept by earlier runs; they are compared too and always survive.
    """
    bands, rows = resolve_bands(cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.recall_weight)
    pool = docs.select("doc_id", "text", F.length("text").alias("n_chars"), F.lit(False).alias("stored"))
    if stored is not None:
        fresh = stored.join(docs.select("doc_id"), "doc_id", "left_anti")
        pool = pool.unionByName(
            fresh.select("doc_id", "text", F.length("text").alias("n_chars"), F.lit(True).alias("stored"))
        )
    sigs = checkpoint(signatures(pool, cfg, bands, rows), "near_dedup/signatures")
    edges = checkpoint(verify_edges(candidate_edges(sigs), sigs, pool, cfg), "near_dedup/edges")
    components, rounds = connected_components(edges, checkpoint, cfg.max_iterations, "near_dedup/components")

    members = components.withColumnRenamed("node", "doc_id").join(pool.drop("text"), "doc_id")
    if cfg.survivor == "best_quality":
        members = members.join(pool.select("doc_id", quality_score_udf("text").alias("quality")), "doc_id")
    by_cluster = Window.partitionBy("component").orderBy(*survivor_order(cfg))
    members = members.withColumn("survivor", F.first("doc_id").over(by_cluster))
    if cfg.verify == "exact":  # report what was verified: exact Jaccard to the survivor
        text_of = pool.select("doc_id", "text")
        members = members.join(text_of, "doc_id").join(
            text_of.select(F.col("doc_id").alias("survivor"), F.col("text").alias("survivor_text")), "survivor"
        )
        measured = _exact_jaccard_udf(cfg)("text", "survivor_text")
    else:
        sig_of = sigs.select("doc_id", "sig")
        members = members.join(sig_of, "doc_id").join(
            sig_of.select(F.col("doc_id").alias("survivor"), F.col("sig").alias("survivor_sig")), "survivor"
        )
        measured = signature_agreement("sig", "survivor_sig")
    similarity = F.when(F.col("doc_id") == F.col("survivor"), F.lit(1.0)).otherwise(measured)
    members = checkpoint(
        members.select(
            F.col("component").alias("cluster_id"),
            "doc_id",
            "survivor",
            (F.col("doc_id") == F.col("survivor")).alias("kept"),
            similarity.alias("similarity"),
            "stored",
        ),
        "near_dedup/members",
    )
    clusters = members.filter(~F.col("stored")).select("cluster_id", "doc_id", "kept", "similarity")
    duplicates = members.filter(~F.col("kept") & ~F.col("stored")).select(
        "doc_id", F.col("survivor").alias("kept_id"), F.lit("minhash").alias("method"), "similarity"
    )
    kept = docs.join(duplicates.select("doc_id"), "doc_id", "left_anti")
    own_sigs = sigs.join(docs.select("doc_id"), "doc_id", "left_semi")
    return NearDedupResult(kept, clusters, duplicates, own_sigs, bands, rows, rounds)
