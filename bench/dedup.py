"""fi-spark near-dedup against DataTrove's MinHash pipeline on the same documents.

Usage: python -m bench.dedup [--docs 10000] [--workers 2] [--skip-datatrove] [--timeout 600]
       (several sizes: --docs 2000,10000 -- fi-spark's time should grow linearly)

Both tools read the same JSONL shards (the first N documents of shared/bench/corpus.jsonl.gz), use
5-word shingles and 112 hashes in 14 bands x 8 rows, and write the deduplicated documents plus their
cluster ids. fi-spark: fi_spark.dedup.near_dedup on the embedded engine (Sail), default settings (the
banding derived from threshold 0.8 is 14 x 8; candidates verified by exact Jaccard). DataTrove 0.10.1:
its four MinHash stages (signatures, buckets, clusters, filter) with LocalPipelineExecutor and
``--workers`` processes, installed with spaCy, regex, orjson, tokenizers and xxhash<4 (and httpx, aiofiles,
aiosqlite for bench/llm_client.py's InferenceRunner) into its own virtualenv under ``--cache`` (created on first
use, topped up when that list changes; pip must reach PyPI then: bench.harness.datatrove).

Each tool runs in its own child process, one at a time, with a deadline (``--timeout`` seconds each,
bench.harness.peers.run_peer): a tool that fails or runs past it gets a row saying so instead of figures,
and the other tool's figures are still printed. Wall time covers reading the input through writing the
output (not interpreter start-up), and peak memory is the peak of the summed resident memory of the child
and all its descendants (Sail runs inside the fi-spark child; DataTrove's workers are its descendants),
sampled from /proc every 0.2 s.
Agreement: every same-cluster document pair of either tool is labelled with its exact 5-gram Jaccard
(fi-spark's shingling); a tool's precision is the share of its pairs at or above the threshold, its
recall the share of all such pairs (found by either tool) that it found.
The last line is a one-line summary.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

from bench.harness.data import REPO, corpus_texts
from bench.harness.datatrove import DEFAULT_CACHE, datatrove_or_reason
from bench.harness.peers import PeerRun, run_peer
from bench.harness.table import print_table, ratio

THRESHOLD = 0.8

DATATROVE_SCRIPT = r"""
import json, sys, time
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import MinhashConfig
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.utils.hashing import HashConfig

inp, work, tasks, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = MinhashConfig(hash_config=HashConfig(precision=64), n_grams=5, num_buckets=14, hashes_per_bucket=8)
logs = f"{work}/logs"
started = time.perf_counter()
LocalPipelineExecutor(pipeline=[JsonlReader(inp), MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)],
                      tasks=tasks, workers=workers, logging_dir=f"{logs}/1").run()
LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets",
                      config=cfg)], tasks=cfg.num_buckets, workers=workers, logging_dir=f"{logs}/2").run()
LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove",
                      config=cfg, save_cluster_id=True)], tasks=1, logging_dir=f"{logs}/3").run()
LocalPipelineExecutor(pipeline=[JsonlReader(inp), MinhashDedupFilter(input_folder=f"{work}/remove",
                      load_cluster_ids=True, exclusion_writer=JsonlWriter(f"{work}/removed")),
                      JsonlWriter(f"{work}/kept")],
                      tasks=tasks, workers=workers, logging_dir=f"{logs}/4").run()
import resource
peak = max(resource.getrusage(r).ru_maxrss for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({"seconds": time.perf_counter() - started, "peak_kib": peak}))
"""


# ------------------------------------------------------------------------------------------ children
def run_fispark(inp: str, work: str) -> None:
    """Child process: near-dedup the JSONL shards in ``inp`` with fi-spark and write kept docs + clusters."""
    from pyspark.sql import functions as F

    from bench.harness.engine import bench_engine
    from fi_spark.config import EngineConfig, NearDedupConfig
    from fi_spark.dedup.components import parquet_checkpoint
    from fi_spark.dedup.near_dedup import near_dedup

    with bench_engine(EngineConfig(mode="embedded", shuffle_partitions=4)) as engine:
        spark = engine.spark
        started = time.perf_counter()
        docs = spark.read.json(inp).select(F.col("id").alias("doc_id"), "text")
        cfg = NearDedupConfig(enabled=True, threshold=THRESHOLD)
        result = near_dedup(docs, cfg, parquet_checkpoint(spark, work))
        result.clusters.write.mode("overwrite").parquet(f"{work}/clusters")
        result.kept.write.mode("overwrite").parquet(f"{work}/kept")
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Sail runs inside this process
        clusters = [(r.doc_id, r.cluster_id) for r in spark.read.parquet(f"{work}/clusters").collect()]
    print(json.dumps({"seconds": seconds, "peak_kib": peak, "bands": result.bands, "rows": result.rows,
                      "clusters": clusters}))  # fmt: skip


# ------------------------------------------------------------------------------------------ comparison
def write_input(n: int, folder: Path, shards: int) -> list[tuple[str, str]]:
    docs = corpus_texts(n)
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-len(docs) // shards)
    for k in range(shards):
        with open(folder / f"part-{k:03d}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(
                json.dumps({"id": doc_id, "text": text}) + "\n" for doc_id, text in docs[k * per : (k + 1) * per]
            )
    return docs


def datatrove_clusters(work: Path) -> list[tuple[str, int]]:
    out = []
    for sub in ("kept", "removed"):
        for path in (work / sub).glob("*.jsonl*"):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    cid = rec.get("metadata", {}).get("minhash_cluster_id", -1)
                    if cid != -1:
                        out.append((rec["id"], cid))
    return out


def pairs_of(clusters: list[tuple[str, object]]) -> set[tuple[str, str]]:
    members: dict[object, list[str]] = defaultdict(list)
    for doc, cid in clusters:
        members[cid].append(doc)
    return {pair for docs in members.values() for pair in combinations(sorted(docs), 2)}


def removed_count(clusters: list[tuple[str, object]]) -> int:
    return len(clusters) - len({cid for _, cid in clusters})


def label(pairs: set[tuple[str, str]], texts: dict[str, str]) -> dict[tuple[str, str], float]:
    from fi_spark.dedup.minhash import MinHasher, jaccard

    hasher, cache = MinHasher(), {}
    for doc in {d for pair in pairs for d in pair}:
        cache[doc] = hasher.shingle_ids(texts[doc])
    return {(a, b): jaccard(cache[a], cache[b]) for a, b in pairs}


def compare(n: int, args: argparse.Namespace, dt_python: Path | None) -> dict:
    """Both tools on the first n documents; per tool its figures, or its PeerRun when it failed or hung."""
    root = Path(tempfile.mkdtemp(prefix=f"dedup-bench-{n}-", dir=args.cache))
    docs = write_input(n, root / "input", shards=args.workers)
    texts = dict(docs)
    runs: dict[str, PeerRun] = {}
    cmd = [sys.executable, "-m", "bench.dedup", "--child-fispark", str(root / "input"), str(root / "fispark")]
    runs["fispark"] = run_peer("fi-spark", cmd, timeout_s=args.timeout, cwd=REPO, sample_memory=True)
    if dt_python is not None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [str(dt_python), "-c", DATATROVE_SCRIPT, str(root / "input"), str(root / "dt"), str(args.workers)]
        runs["datatrove"] = run_peer("datatrove", [*cmd, str(args.workers)], timeout_s=args.timeout, env=env,
                                     sample_memory=True)  # fmt: skip
    out: dict = {"n": n, "failed": {tool: run for tool, run in runs.items() if not run.ok}}
    for tool, run in runs.items():
        if run.ok:
            assert run.result is not None
            clusters = run.result["clusters"] if tool == "fispark" else datatrove_clusters(root / "dt")
            out[tool] = {"seconds": run.result["seconds"], "rss": run.peak_tree_mib, "clusters": clusters}
    found = {tool: pairs_of(out[tool]["clusters"]) for tool in ("fispark", "datatrove") if tool in out}
    labels = label(set().union(*found.values()), texts) if found else {}
    good = {p for p, j in labels.items() if j >= THRESHOLD}
    for tool, pairs in found.items():
        r = out[tool]
        r["pairs"], r["removed"] = len(pairs), removed_count(r["clusters"])
        r["precision"] = len(pairs & good) / len(pairs) if pairs else 1.0
        r["recall"] = len(pairs & good) / len(good) if good else 1.0
        r["docs_s"] = n / r["seconds"]
    if "datatrove" in out and "fispark" in out:
        out["only_fispark"] = len(found["fispark"] - found["datatrove"])
        out["only_datatrove"] = len(found["datatrove"] - found["fispark"])
        out["only_fispark_good"] = len((found["fispark"] - found["datatrove"]) & good)
        out["only_datatrove_good"] = len((found["datatrove"] - found["fispark"]) & good)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="10000", help="comma-separated sizes")
    parser.add_argument("--workers", type=int, default=2, help="DataTrove processes (and input shards)")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--timeout", type=float, default=600, help="seconds each tool may run (then: a row)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--child-fispark", nargs=2, metavar=("INPUT", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_fispark:
        run_fispark(*args.child_fispark)
        return
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    dt_python, why = (None, "") if args.skip_datatrove else datatrove_or_reason(Path(args.cache))
    if why:
        print(why, flush=True)
    results = [compare(int(n), args, dt_python) for n in args.docs.split(",")]

    print(f"\nnear-dedup, 5-word shingles, 112 hashes = 14 bands x 8 rows, threshold {THRESHOLD}; one tool at a time\n")
    rows: list[list[object]] = []
    for r in results:
        for tool in ("fispark", "datatrove"):
            if tool in r:
                t = r[tool]
                rows.append([r["n"], tool, f"{t['seconds']:.1f}", f"{t['docs_s']:.0f}", f"{t['rss']:.0f}", t["removed"],
                             t["pairs"], f"{t['precision']:.3f}", f"{t['recall']:.3f}"])  # fmt: skip
            elif tool in r["failed"]:
                rows.append([r["n"], tool, r["failed"][tool].row(), "", "", "", "", "", ""])
    print_table(["docs", "tool", "seconds", "docs/s", "peak RSS MiB (tree)", "removed", "same-cluster pairs",
                 "precision", "recall"], rows)  # fmt: skip
    for r in results:
        if "datatrove" in r and "fispark" in r:
            f, d = r["fispark"], r["datatrove"]
            print(
                f"\n{r['n']} docs: fi-spark / datatrove docs/s = {ratio(f['docs_s'], d['docs_s'])}x; "
                f"pairs only fi-spark {r['only_fispark']} ({r['only_fispark_good']} at J>={THRESHOLD}), "
                f"only datatrove {r['only_datatrove']} ({r['only_datatrove_good']} at J>={THRESHOLD})"
            )
    measured = [r for r in results if "fispark" in r]
    if len(measured) > 1:
        first, last = measured[0], measured[-1]
        growth = (last["fispark"]["seconds"] / first["fispark"]["seconds"]) / (last["n"] / first["n"])
        print(f"fi-spark time growth {first['n']} -> {last['n']} docs: {growth:.2f} x linear")
    last = results[-1]
    f = last.get("fispark")
    dt = last.get("datatrove")
    if f is None:
        print(f"dedup: {last['failed']['fispark'].row()}")
        return
    ratio_txt = ratio(f["docs_s"], dt["docs_s"]) if dt else "n/a"
    print(
        f"dedup: fi-spark {f['docs_s']:.0f} docs/s = {ratio_txt} x datatrove; "
        f"recall {f['recall']:.3f}, precision {f['precision']:.3f}"
    )


if __name__ == "__main__":
    main()
