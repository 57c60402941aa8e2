"""Template candidates per document, and the paper's rules for which of them become pairs.

`top_candidates` runs inside the match stage's mapInPandas, next to the encoder, so vectors never
leave the worker: only (doc_id, template_id, score, region, chunk) rows do. Each vector retrieves
`top_k` templates; a template found by several vectors of one document keeps its best score (and that
vector's region and chunk); a document keeps at most `per_doc` candidates (the paper: 6) at or above
`min_score` (the cosine threshold; the paper: 0.865 with its own embedding). A document with no
template above `min_score` yields one marker row with a null template_id and its best raw score, so
the stage can reject it with a reason that shows how far off it was.

The selection rules are pure functions, applied per document once the global per-template cap has
run in Spark (fi_spark.match.match):
1. order the candidates: `best` (score, high first) or `slot_weighted` -- a weighted sample without
   replacement (Efraimidis-Spirakis keys u^(1/w) from a hash of seed, document and template, so it is
   deterministic), with w = share of k-slot templates in the bank / share among all candidates, so the
   kept pairs keep (approximately) the bank's slot-count distribution instead of the retrieval's bias;
2. token-for-token budget, first fit in that order: a candidate is kept when the estimated tokens of
   the pairs kept so far plus its own stay within `budget_ratio` x the document's tokens (the paper:
   1.0, about 3 pairs per document), else skipped for a shorter one; at most `max_per_doc` are kept.
A pair's tokens before it exists are estimated as the template's tokens plus `answer_tokens`; after
judging, the same first fit runs on the real tokens, best verdicts first (`final_budget_keep`).
Tokens here are word tokens (fi_spark.instantiate.grounding.word_tokens / documents.n_words) on both
sides, so the ratio means the same as the paper's model-token ratio up to the words/token rate.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from fi_spark.embed.documents import DocVectors
from fi_spark.index.artifact import LoadedIndex
from fi_spark.index.build import search
from fi_spark.text.words import word_tokens

CANDIDATE_DDL = (
    "doc_id string, template_id string, score float, region int, centre float, "
    "chunk_id string, char_start int, char_end int"
)
CANDIDATE_COLUMNS = [c.split(" ")[0] for c in CANDIDATE_DDL.split(", ")]


def top_candidates(
    dv: DocVectors, loaded: LoadedIndex, top_k: int, min_score: float, per_doc: int | None = None
) -> pd.DataFrame:
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
    kept = kept.drop_duplicates(["doc_id", "template_id"]).groupby("doc_id", sort=False).head(per_doc or top_k)
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


# --------------------------------------------------------------------------- selection rules (pure)
Selection = Literal["best", "slot_weighted"]
_TAG = re.compile(r"</?fi>")


@dataclass(frozen=True)
class PlanRules:
    """How one document's candidates become planned pairs (see the module docstring)."""

    max_per_doc: int
    selection: Selection = "best"
    budget_ratio: float | None = None  # None: no token budget
    answer_tokens: int = 0  # estimated answer tokens of a pair not written yet
    seed: int = 0


def template_tokens(template: str) -> int:
    """Word tokens of a template with its slot tags removed (its slot descriptions stand in for the values)."""
    return len(word_tokens(_TAG.sub(" ", template or "")))


def slot_weights(bank: Mapping[int, int], candidates: Mapping[int, int]) -> dict[int, float]:
    """Per slot count k: (share of k-slot templates in the bank) / (share among the candidates); 1.0 if unknown."""
    n_bank, n_cand = sum(bank.values()), sum(candidates.values())
    return {
        k: (bank[k] / n_bank) / (c / n_cand) if bank.get(k, 0) > 0 and c > 0 else 1.0 for k, c in candidates.items()
    }


def sample_key(seed: int, doc_id: str, template_id: str, weight: float) -> float:
    """Efraimidis-Spirakis key log(u)/w (larger first = weighted sampling without replacement); -inf for w <= 0."""
    if weight <= 0:
        return -math.inf
    digest = hashlib.sha256(f"{seed}|{doc_id}|{template_id}".encode()).hexdigest()
    u = (int(digest[:13], 16) + 0.5) / 16**13  # uniform in (0, 1)
    return math.log(u) / weight


def first_fit(tokens: Sequence[int], budget: float | None, max_n: int | None = None) -> list[int]:
    """Indices kept, in order: each item whose tokens still fit in `budget` (None: no budget), at most max_n."""
    kept: list[int] = []
    used = 0
    for i, t in enumerate(tokens):
        if max_n is not None and len(kept) >= max_n:
            break
        if budget is None or used + t <= budget:
            kept.append(i)
            used += t
    return kept


def plan_document(
    candidates: pd.DataFrame, doc_tokens: int, rules: PlanRules, weights: Mapping[int, float] | None = None
) -> pd.DataFrame:
    """One document's candidates (template_id, score, n_slots, template_tokens, ...) -> the planned rows.

    Adds `est_tokens` and `rank` (1 = first in the selection order); rows not planned are left out.
    """
    frame = candidates.reset_index(drop=True)
    if rules.selection == "slot_weighted":
        w = weights or {}
        keys = [
            sample_key(rules.seed, str(d), str(t), w.get(int(k), 1.0))
            for d, t, k in zip(frame["doc_id"], frame["template_id"], frame["n_slots"], strict=True)
        ]
        frame = frame.assign(_key=keys).sort_values(["_key", "template_id"], ascending=[False, True])
        frame = frame.drop(columns="_key")
    else:
        frame = frame.sort_values(["score", "template_id"], ascending=[False, True])
    est = (frame["template_tokens"].astype(int) + rules.answer_tokens).tolist()
    budget = None if rules.budget_ratio is None else rules.budget_ratio * doc_tokens
    keep = first_fit(est, budget, rules.max_per_doc)
    out = frame.iloc[keep].copy()
    out["est_tokens"] = [est[i] for i in keep]
    out["rank"] = np.arange(1, len(out) + 1, dtype=np.int32)
    return out


def final_budget_keep(pairs: pd.DataFrame, doc_tokens: int, budget_ratio: float | None) -> list[str]:
    """Judged pairs of one document (pair_id, tokens, judge_score, expected_score, match_rank) -> pair_ids kept.

    Best verdicts first (score, then expected score, then match rank), first fit on their real tokens.
    """
    order = pairs.assign(
        _s=pairs["judge_score"].fillna(-math.inf),
        _e=pairs["expected_score"].astype(float).fillna(-math.inf),
        _r=pairs["match_rank"].fillna(math.inf),
    ).sort_values(["_s", "_e", "_r", "pair_id"], ascending=[False, False, True, True])
    budget = None if budget_ratio is None else budget_ratio * doc_tokens
    ids = order["pair_id"].tolist()
    return [ids[i] for i in first_fit(order["tokens"].astype(int).tolist(), budget)]


def slot_share_distance(bank: Mapping[int, int], counts: Mapping[int, int]) -> float:
    """Total variation distance between the bank's slot-count shares and the kept pairs' ({k: pairs}; 0 = same)."""
    n_bank, n_kept = sum(bank.values()), sum(counts.values())
    if not n_bank or not n_kept:
        return 0.0
    keys = set(bank) | set(counts)
    return 0.5 * sum(abs(bank.get(k, 0) / n_bank - counts.get(k, 0) / n_kept) for k in keys)
