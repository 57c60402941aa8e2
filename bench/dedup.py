"""fi-spark near-dedup against DataTrove's MinHash pipeline on the same documents.

Usage: .venv/bin/python bench/dedup.py [--docs 10000] [--workers 2] [--skip-datatrove]
       (several sizes: --docs 2000,10000 -- fi-spark's time should grow linearly)

Both tools read the same JSONL shards (the first N documents of shared/bench/corpus.jsonl.gz), use
5-word shingles and 112 hashes in 14 bands x 8 rows, and write the deduplicated documents plus their
cluster ids. fi-spark: fi_spark.dedup.near_dedup on the embedded engine (Sail), default settings (the
banding derived from threshold 0.8 is 14 x 8; candidates verified by exact Jaccard). DataTrove 0.10.1:
its four MinHash stages (signatures, buckets, clusters, filter) with LocalPipelineExecutor and
``--workers`` processes, installed with spaCy, regex, orjson, tokenizers and xxhash<4 (and httpx, aiofiles,
aiosqlite for bench/llm_client.py's InferenceRunner) into its own virtualenv under ``--cache`` (created on first
use, topped up when that list changes; pip must reach PyPI then).

Each tool runs in its own child process, one at a time; wall time covers reading the input through
writing the output (not interpreter start-up), and peak memory is the peak of the summed resident
memory of the child and all its descendants (Sail runs inside the fi-spark child; DataTrove's workers
are its descendants), sampled from /proc every 0.2 s.
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
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("FI_SPARK_BENCH_CORPUS") or REPO.parent / "shared" / "bench" / "corpus.jsonl.gz")
DATATROVE_REQUIREMENTS = [
    "datatrove==0.10.1",
    "spacy==3.8.18",
    "regex==2026.11.19",
    "orjson==3.13.0",
    "tokenizers==0.23.3",
    "xxhash==3.8.2",  # xxhash 4.x breaks datatrove's signature step
    # InferenceRunner (bench/llm_client.py): the parts of datatrove[inference] that its "endpoint" server
    # type imports -- not the extra itself, which pulls vLLM and SGLang
    "httpx==0.28.1",
    "aiofiles==25.1.0",
    "aiosqlite==0.22.1",
]
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

    from fi_spark.config import EngineConfig, NearDedupConfig
    from fi_spark.dedup.components import parquet_checkpoint
    from fi_spark.dedup.near_dedup import near_dedup
    from fi_spark.engine import start_engine

    engine = start_engine(EngineConfig(mode="embedded", shuffle_partitions=4))
    spark = engine.spark
    started = time.perf_counter()
    docs = spark.read.json(inp).select(F.col("id").alias("doc_id"), "text")
    result = near_dedup(docs, NearDedupConfig(enabled=True, threshold=THRESHOLD), parquet_checkpoint(spark, work))
    result.clusters.write.mode("overwrite").parquet(f"{work}/clusters")
    result.kept.write.mode("overwrite").parquet(f"{work}/kept")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Sail runs inside this process
    clusters = [(r.doc_id, r.cluster_id) for r in spark.read.parquet(f"{work}/clusters").collect()]
    print(
        json.dumps(
            {"seconds": seconds, "peak_kib": peak, "bands": result.bands, "rows": result.rows, "clusters": clusters}
        )
    )
    engine.stop()


def child(cmd: list[str], env: dict | None = None) -> dict:
    """Run one measured child; returns its JSON result plus ``peak_tree_mib``: the peak of the summed
    resident memory of the child and all its descendants, sampled from /proc every 0.2 s (Linux)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.2):
            peak = max(peak, _tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    last = [line for line in stdout.splitlines() if line.startswith("{")][-1]
    return {**json.loads(last), "peak_tree_mib": peak / 1024}


def _tree_rss_kib(root: int) -> int:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total


def ensure_datatrove(cache: Path) -> Path:
    """The python of DataTrove's own virtualenv under ``cache``, created on first use and topped up when
    DATATROVE_REQUIREMENTS changed since (the installed list is kept in the venv as requirements.txt)."""
    venv = cache / "datatrove-venv"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = "\n".join(DATATROVE_REQUIREMENTS) + "\n"
    if not python.exists():
        print(f"creating {venv} (datatrove and spaCy from PyPI; a few minutes, once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not stamp.exists() or stamp.read_text(encoding="utf-8") != wanted:
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DATATROVE_REQUIREMENTS], check=True)
        stamp.write_text(wanted, encoding="utf-8")
    return python


# ------------------------------------------------------------------------------------------ comparison
def write_input(n: int, folder: Path, shards: int) -> list[tuple[str, str]]:
    docs = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            docs.append((rec["id"], rec["text"]))
            if len(docs) >= n:
                break
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
    root = Path(tempfile.mkdtemp(prefix=f"dedup-bench-{n}-", dir=args.cache))
    docs = write_input(n, root / "input", shards=args.workers)
    texts = dict(docs)
    fi = child([sys.executable, __file__, "--child-fispark", str(root / "input"), str(root / "fispark")])
    out = {"n": n, "fispark": {"seconds": fi["seconds"], "rss": fi["peak_tree_mib"], "clusters": fi["clusters"]}}
    if dt_python is not None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [str(dt_python), "-c", DATATROVE_SCRIPT, str(root / "input"), str(root / "dt"), str(args.workers)]
        dt = child([*cmd, str(args.workers)], env)
        clusters = datatrove_clusters(root / "dt")
        out["datatrove"] = {"seconds": dt["seconds"], "rss": dt["peak_tree_mib"], "clusters": clusters}
    found = {tool: pairs_of(r["clusters"]) for tool, r in out.items() if isinstance(r, dict)}
    labels = label(set().union(*found.values()), texts)
    good = {p for p, j in labels.items() if j >= THRESHOLD}
    for tool, pairs in found.items():
        r = out[tool]
        r["pairs"], r["removed"] = len(pairs), removed_count(r["clusters"])
        r["precision"] = len(pairs & good) / len(pairs) if pairs else 1.0
        r["recall"] = len(pairs & good) / len(good) if good else 1.0
        r["docs_s"] = n / r["seconds"]
    if "datatrove" in out:
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
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "fi-spark" / "bench"))
    parser.add_argument("--child-fispark", nargs=2, metavar=("INPUT", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_fispark:
        run_fispark(*args.child_fispark)
        return
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    dt_python = None if args.skip_datatrove else ensure_datatrove(Path(args.cache))
    results = [compare(int(n), args, dt_python) for n in args.docs.split(",")]

    print(f"\nnear-dedup, 5-word shingles, 112 hashes = 14 bands x 8 rows, threshold {THRESHOLD}; one tool at a time\n")
    print(
        "| docs | tool | seconds | docs/s | peak RSS MiB (tree) | removed | same-cluster pairs | precision | recall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for tool in ("fispark", "datatrove"):
            if tool in r:
                t = r[tool]
                print(
                    f"| {r['n']} | {tool} | {t['seconds']:.1f} | {t['docs_s']:.0f} | {t['rss']:.0f} | {t['removed']} "
                    f"| {t['pairs']} | {t['precision']:.3f} | {t['recall']:.3f} |"
                )
    for r in results:
        if "datatrove" in r:
            f, d = r["fispark"], r["datatrove"]
            print(
                f"\n{r['n']} docs: fi-spark / datatrove docs/s = {f['docs_s'] / d['docs_s']:.2f}x; "
                f"pairs only fi-spark {r['only_fispark']} ({r['only_fispark_good']} at J>={THRESHOLD}), "
                f"only datatrove {r['only_datatrove']} ({r['only_datatrove_good']} at J>={THRESHOLD})"
            )
    if len(results) > 1:
        first, last = results[0], results[-1]
        growth = (last["fispark"]["seconds"] / first["fispark"]["seconds"]) / (last["n"] / first["n"])
        print(f"fi-spark time growth {first['n']} -> {last['n']} docs: {growth:.2f} x linear")
    last = results[-1]
    f = last["fispark"]
    ratio = f"{f['docs_s'] / last['datatrove']['docs_s']:.2f}" if "datatrove" in last else "n/a"
    print(
        f"dedup: fi-spark {f['docs_s']:.0f} docs/s = {ratio} x datatrove; "
        f"recall {f['recall']:.3f}, precision {f['precision']:.3f}"
    )


if __name__ == "__main__":
    main()
