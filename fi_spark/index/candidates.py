"""Per-partition template candidates: pooled document vectors -> the best templates per document.

Runs inside the match stage's mapInPandas, next to the encoder, so vectors never leave the worker:
only (doc_id, template_id, score, region, chunk) rows do. Each vector retrieves `top_k` templates;
a template found by several vectors of one document keeps its best score (and that vector's region
and chunk); a document keeps at most `top_k` templates above `min_score`. The global caps (per
template, per document) need every partition's candidates and are applied afterwards in Spark.

A document with no template above `min_score` yields one marker row with a null template_id and
its best raw score, so the stage can reject it with a reason that shows how far off it was.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fi_spark.embed.documents import DocVectors
from fi_spark.index.artifact import LoadedIndex
from fi_spark.index.build import search

CANDIDATE_DDL = (
    "doc_id string, template_id string, score float, region int, centre float, "
    "chunk_id string, char_start int, char_end int"
)
CANDIDATE_COLUMNS = [c.split(" ")[0] for c in CANDIDATE_DDL.split(", ")]


def top_candidates(dv: DocVectors, loaded: LoadedIndex, top_k: int, min_score: float) -> pd.DataFrame:
    """Best templates per document of `dv` (see module docstring); marker rows for documents without any."""
    if not len(dv):
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    scores, ids = search(loaded.index, dv.matrix(loaded.index.d), top_k)
    n_vec, k = ids.shape
    rows = np.repeat(np.arange(n_vec), k)
    flat_ids, flat_scores = ids.ravel(), scores.ravel()
    valid = flat_ids >= 0
    hits = pd.DataFrame(
        {
            "doc_id": np.asarray(dv.doc_ids, dtype=object)[rows[valid]],
            "template_id": loaded.ids[flat_ids[valid]],
            "score": flat_scores[valid].astype(np.float32),
            "vec": rows[valid],
        }
    )
    best_raw = hits.groupby("doc_id", sort=False)["score"].max() if len(hits) else pd.Series(dtype=np.float32)
    kept = hits[hits["score"] >= min_score]
    kept = kept.sort_values(["doc_id", "score", "template_id"], ascending=[True, False, True])
    kept = kept.drop_duplicates(["doc_id", "template_id"]).groupby("doc_id", sort=False).head(top_k)
    for name, values in (
        ("region", dv.regions),
        ("centre", dv.centres),
        ("chunk_id", dv.chunk_ids),
        ("char_start", dv.char_starts),
        ("char_end", dv.char_ends),
    ):
        kept[name] = np.asarray(values, dtype=object)[kept["vec"].to_numpy()]
    missing = [d for d in dict.fromkeys(dv.doc_ids) if d not in set(kept["doc_id"])]
    markers = pd.DataFrame(
        {
            "doc_id": missing,
            "template_id": None,
            "score": [float(best_raw.get(d, np.nan)) for d in missing],
            "region": 0,
            "centre": 0.5,
        }
    )
    parts = [frame for frame in (kept.drop(columns="vec"), markers) if len(frame)]
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return _typed(out.reindex(columns=CANDIDATE_COLUMNS))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Arrow-friendly dtypes: strings as objects with None (not NaN), nullable ints for spans, float32 scores."""
    for col in ("doc_id", "template_id", "chunk_id"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
    df["score"] = df["score"].astype(np.float32)
    df["centre"] = df["centre"].astype(np.float32)
    df["region"] = df["region"].astype(np.int32)
    for col in ("char_start", "char_end"):
        df[col] = pd.array(df[col].tolist(), dtype="Int32")
    return df
