"""Precision and recall of fi-spark's near-duplicate detection on real documents with controlled edits.

Usage: python -m bench.dedup_quality [--bases 1000] [--distractors 1000] [--threshold 0.8]

Labelled pairs: real documents from bench/corpus.jsonl.gz (>= 100 words), each paired with one edited
copy -- scattered word insertions, deletions or substitutions, an inserted block from another document,
or appended boilerplate (cookie / navigation / newsletter lines) -- whose edit size is drawn so the
pair's Jaccard similarity spreads over 0.4..1.0. The label is the *exact* Jaccard of the two shingle
sets (the same 5-word shingles near-dedup uses), not the intended one. Unedited real documents are
added as distractors.

Measured for several settings, on the embedded engine, end to end through fi_spark.dedup.near_dedup:
- recall: share of labelled pairs with exact Jaccard >= threshold that end in the same cluster;
- precision: share of all same-cluster document pairs whose exact Jaccard >= threshold (so a natural
  near-duplicate among the real documents counts as correct, an unrelated merge as wrong);
- merge rate below the threshold, by Jaccard bin, i.e. how sharp the cut is.
The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter, defaultdict
from itertools import combinations, pairwise

from bench.harness.data import corpus_records
from bench.harness.engine import bench_engine
from bench.harness.table import print_table
from fi_spark.config import EngineConfig, NearDedupConfig
from fi_spark.dedup.components import parquet_checkpoint
from fi_spark.dedup.lsh import resolve_bands
from fi_spark.dedup.minhash import MinHasher, jaccard
from fi_spark.dedup.near_dedup import near_dedup

BOILERPLATE = [
    "This website uses cookies to improve your experience. Accept all cookies or manage your preferences.",
    "Home | News | Sports | Business | Culture | Opinion | Contact us | Privacy policy | Terms of use",
    "Subscribe to our newsletter and get the best stories delivered to your inbox every morning.",
    "Share this article on Facebook, Twitter, LinkedIn or by email with your friends and colleagues.",
    "Copyright 2024 Example Media Group. All rights reserved. Reproduction without permission is prohibited.",
    "Related articles: more stories you may like from our editors, updated every hour of the day.",
]
KINDS = ("insert", "delete", "substitute", "block", "boilerplate")
SETTINGS = {
    "default (derived 14x8, verify=exact)": {},
    "14x8, verify=none (datatrove-like)": {"verify": "none"},
    "14x8, verify=signature": {"verify": "signature"},
    "recall_weight=0.5 (9x12), verify=signature": {"recall_weight": 0.5, "verify": "signature"},
}


def load_documents(limit: int, min_words: int = 100) -> list[tuple[str, str]]:
    """The first `limit` distinct corpus documents of at least `min_words` words."""
    docs, seen = [], set()
    for rec in corpus_records():
        if len(rec["text"].split()) >= min_words and rec["text"] not in seen:
            seen.add(rec["text"])
            docs.append((rec["id"], rec["text"]))
            if len(docs) >= limit:
                break
    return docs


def edit(words: list[str], kind: str, target: float, rng: random.Random, donor: list[str]) -> list[str]:
    """An edited copy whose 5-gram Jaccard to ``words`` is roughly ``target``."""
    n = len(words)
    scattered = max(1, round(n * (1 - target) / (5 * (1 + target))))  # each scattered edit breaks ~5 shingles
    out = list(words)
    if kind == "insert":
        for _ in range(scattered):
            out.insert(rng.randrange(len(out) + 1), rng.choice(donor))
    elif kind == "delete":
        for _ in range(min(scattered, n - 6)):
            out.pop(rng.randrange(len(out)))
    elif kind == "substitute":
        for pos in rng.sample(range(n), min(scattered, n)):
            out[pos] = rng.choice(donor)
    elif kind == "block":
        size = max(1, round(n * (1 - target) / target))
        start = rng.randrange(max(1, len(donor) - size))
        pos = rng.randrange(n + 1)
        out[pos:pos] = donor[start : start + size]
    else:  # boilerplate lines appended and prepended
        size, lines = max(1, round(n * (1 - target) / target)), []
        while sum(len(line.split()) for line in lines) < size:
            lines.append(rng.choice(BOILERPLATE))
        boiler = " ".join(lines).split()[:size]
        half = len(boiler) // 2
        out = boiler[:half] + out + boiler[half:]
    return out


def build(bases: int, distractors: int, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    docs = load_documents(bases + distractors)
    rng = random.Random(seed)
    rng.shuffle(docs)
    pool: list[tuple[str, str]] = []
    pairs: list[tuple[str, str, str]] = []  # (base id, variant id, kind)
    for i, (doc_id, text) in enumerate(docs[:bases]):
        kind = KINDS[i % len(KINDS)]
        target = rng.uniform(0.4, 1.0)
        donor = docs[(i + 1) % len(docs)][1].split()
        variant = " ".join(edit(text.split(), kind, target, rng, donor))
        pool += [(doc_id, text), (f"{doc_id}~{kind}", variant)]
        pairs.append((doc_id, f"{doc_id}~{kind}", kind))
    pool += docs[bases:]
    return pool, pairs


def evaluate(spark, pool, pairs, cfg: NearDedupConfig, work: str, hasher: MinHasher, shingles: dict) -> dict:
    df = spark.createDataFrame(pool, "doc_id string, text string").repartition(4)
    started = time.perf_counter()
    result = near_dedup(df, cfg, parquet_checkpoint(spark, work))
    clusters: dict[str, list[str]] = defaultdict(list)
    for row in result.clusters.collect():
        clusters[row.cluster_id].append(row.doc_id)
    seconds = time.perf_counter() - started
    cluster_of = {doc: cid for cid, members in clusters.items() for doc in members}

    def exact(a: str, b: str) -> float:
        return jaccard(shingles[a], shingles[b])

    predicted = [(a, b) for members in clusters.values() for a, b in combinations(sorted(members), 2)]
    correct = sum(exact(a, b) >= cfg.threshold for a, b in predicted)
    labelled = [(a, b, kind, exact(a, b)) for a, b, kind in pairs]
    found = {
        (a, b): cluster_of.get(a) is not None and cluster_of.get(a) == cluster_of.get(b) for a, b, _, _ in labelled
    }
    positives = [(a, b, kind, j) for a, b, kind, j in labelled if j >= cfg.threshold]
    by_bin: dict[str, list[bool]] = defaultdict(list)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for a, b, kind, j in labelled:
        by_bin[_bin(j)].append(found[(a, b)])
        if j >= cfg.threshold:
            by_kind[kind].append(found[(a, b)])
    recall = sum(found[(a, b)] for a, b, _, _ in positives) / max(1, len(positives))
    return {
        "recall": recall,
        "precision": correct / len(predicted) if predicted else 1.0,
        "predicted_pairs": len(predicted),
        "positives": len(positives),
        "by_bin": {k: (sum(v), len(v)) for k, v in by_bin.items()},
        "by_kind": {k: (sum(v), len(v)) for k, v in by_kind.items()},
        "seconds": seconds,
        "docs_s": len(pool) / seconds,
    }


def _bin(j: float) -> str:
    edges = [0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0001]
    for low, high in pairwise(edges):
        if low <= j < high:
            return f"{low:.2f}-{min(high, 1.0):.2f}"
    return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, default=1000)
    parser.add_argument("--distractors", type=int, default=1000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pool, pairs = build(args.bases, args.distractors, args.seed)
    hasher = MinHasher()
    shingles = {doc_id: hasher.shingle_ids(text) for doc_id, text in pool}
    kinds = Counter(kind for _, _, kind in pairs)
    print(f"{len(pool)} documents: {len(pairs)} labelled pairs ({dict(kinds)}), {args.distractors} distractors\n")

    results = {}
    with (
        bench_engine(EngineConfig(mode="embedded", shuffle_partitions=4)) as engine,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for name, overrides in SETTINGS.items():
            cfg = NearDedupConfig(enabled=True, threshold=args.threshold, **overrides)
            results[name] = evaluate(engine.spark, pool, pairs, cfg, f"{tmp}/{len(results)}", hasher, shingles)

    print(f"threshold {args.threshold}; pairs found / labelled pairs, by exact Jaccard bin\n")
    bins = sorted({b for r in results.values() for b in r["by_bin"]})
    by_bin = []
    for name, r in results.items():
        cfg = NearDedupConfig(enabled=True, threshold=args.threshold, **SETTINGS[name])
        b, rw = resolve_bands(cfg.threshold, cfg.num_perm, cfg.bands, cfg.rows, cfg.recall_weight)
        by_bin.append([name, f"{b}x{rw}", *(f"{r['by_bin'].get(k, (0, 0))[0]}/{r['by_bin'].get(k, (0, 0))[1]}"
                                            for k in bins)])  # fmt: skip
    print_table(["setting", "bands x rows", *bins], by_bin)
    print()
    print_table(
        ["setting", "recall", "precision", "same-cluster pairs", "recall by edit kind", "docs/s"],
        [[name, f"{r['recall']:.3f}", f"{r['precision']:.3f}", r["predicted_pairs"],
          ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(r["by_kind"].items())), f"{r['docs_s']:.0f}"]
         for name, r in results.items()],
    )  # fmt: skip
    d = results[next(iter(SETTINGS))]
    print(
        f"\ndedup_quality: default settings recall {d['recall']:.3f}, precision {d['precision']:.3f} "
        f"at Jaccard >= {args.threshold} on {d['positives']} positive pairs of {len(pairs)}"
    )


if __name__ == "__main__":
    main()
