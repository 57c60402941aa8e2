"""MinHash signature throughput, single process: the measurement behind fi_spark/dedup/minhash.py.

Usage: python -m bench.minhash [--docs 10000]

5-word shingles, 112 permutations, the first N documents of shared/bench/corpus.jsonl.gz. Rows:
- python shingles (+ rensa / + datasketch): n-gram strings built in Python (the way both libraries'
  string APIs are fed), then ``rensa.RMinHash.update`` / ``datasketch.MinHash.update_batch``;
- vectorized shingles + numpy permutations: fi-spark's shingling, then multiply-add-shift universal
  hashing over a (permutation, shingle) block, min-reduced per document;
- vectorized shingles + rensa flat (fi-spark): fi-spark's shingling, then rensa's
  ``digest_matrix_from_flat_token_hashes`` -- what fi_spark.dedup.minhash does.
datasketch is measured only when installed (it is not a dependency). The last line is a summary.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable

import numpy as np
import rensa

from bench.harness.data import corpus_texts
from bench.harness.table import print_table, ratio
from fi_spark.dedup.minhash import _SEP, MinHasher

WORD = re.compile(r"\w+")
NUM_PERM, NGRAM = 112, 5


def python_shingles(text: str) -> list[str]:
    tokens = WORD.findall(text.lower())
    return list({" ".join(tokens[i : i + NGRAM]) for i in range(max(1, len(tokens) - NGRAM + 1))})


def with_rensa_strings(texts: list[str]) -> None:
    for text in texts:
        m = rensa.RMinHash(num_perm=NUM_PERM, seed=42)
        m.update(python_shingles(text))
        m.digest()


def with_datasketch(texts: list[str]) -> None:
    import datasketch

    for text in texts:
        m = datasketch.MinHash(num_perm=NUM_PERM, seed=42)
        m.update_batch([s.encode() for s in python_shingles(text)])
        m.digest()


def with_numpy_permutations(texts: list[str]) -> None:
    hasher = MinHasher(num_perm=NUM_PERM, ngram=NGRAM)
    rng = np.random.Generator(np.random.PCG64(1))
    a = rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)[:, None]
    doc_of, ids, _ = hasher._shingles([t.replace(_SEP, " ") for t in texts])
    ids = ids >> np.uint64(32)  # 32-bit shingle ids: multiply-add-shift is exact on them
    values = np.full((len(texts), NUM_PERM), 0xFFFFFFFF, dtype=np.uint32)
    for lo in range(0, len(ids), 16_384):
        block_ids, block_docs = ids[lo : lo + 16_384], doc_of[lo : lo + 16_384]
        h = np.multiply.outer(a, block_ids)
        h += b
        h >>= np.uint64(32)
        starts = np.flatnonzero(np.concatenate(([True], block_docs[1:] != block_docs[:-1])))
        rows = block_docs[starts]
        values[rows] = np.minimum(values[rows], np.minimum.reduceat(h, starts, axis=1).T.astype(np.uint32))


def with_fispark(texts: list[str]) -> None:
    MinHasher(num_perm=NUM_PERM, ngram=NGRAM).signatures(texts)


def timed(fn: Callable[[list[str]], None], texts: list[str], repeats: int = 2) -> float:
    fn(texts[:50])  # imports, tables and caches outside the timing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn(texts)
        best = min(best, time.perf_counter() - started)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    args = parser.parse_args()
    texts = [text for _, text in corpus_texts(args.docs)]
    candidates: dict[str, Callable[[list[str]], None]] = {
        "python shingles + rensa strings": with_rensa_strings,
        "python shingles + datasketch": with_datasketch,
        "vectorized shingles + numpy permutations": with_numpy_permutations,
        "vectorized shingles + rensa flat (fi-spark)": with_fispark,
    }
    print(f"{len(texts)} documents, {NGRAM}-word shingles, {NUM_PERM} permutations, one process\n")
    rates: dict[str, float] = {}
    cells = []
    for name, fn in candidates.items():
        try:
            rates[name] = timed(fn, texts)
        except ImportError:
            cells.append([name, "(not installed)"])
            continue
        cells.append([name, f"{rates[name]:.0f}"])
    print_table(["method", "docs/s"], cells)
    ours = rates["vectorized shingles + rensa flat (fi-spark)"]
    others = {k: v for k, v in rates.items() if "fi-spark" not in k}
    best_name = max(others, key=others.__getitem__)
    times = ratio(ours, others[best_name], ".1f")
    print(f"\nminhash: fi-spark {ours:.0f} docs/s = {times} x the next best ({best_name})")


if __name__ == "__main__":
    main()
