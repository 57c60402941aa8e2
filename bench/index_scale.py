"""Benchmark: the template index from 10k to 2M+ vectors of the GPU profile's dimension, and its 18M extrapolation.

    python -m bench.index_scale                            # 10k, 100k, 500k, 1M, 2M (about 20 min on 2 cores)
    python -m bench.index_scale --sizes 10000 100000       # a quick look
    python -m bench.index_scale --compare 100000           # IVF-PQ, IVF-Flat, HNSW side by side at one size

Vectors. The GPU profile (conf/fineinstructions.yaml) embeds with a 1024-d BGE-M3 derivative that is not
installed here, so the bank is made from real text embedded with the installed all-MiniLM-L6-v2 (384-d): the
bundled sample queries and the labelled templates (bench/labeled) -- about a thousand instruction-like texts, the
"templates" -- lifted to 1024-d by a fixed random map with orthonormal rows (seeded; cosines kept exactly). Each
bank vector is one real template vector plus a random share (0-50%) of another and a little Gaussian noise
(norm 0.25), renormalised: replicas with noise, spread along the directions real templates span rather than in
tight clumps. So the bank spans 384 of the 1024 dimensions (MiniLM's); real 1024-d embeddings use them all.
They are generated in batches from a per-batch seed, never held all at once (2M x 1024 float32 is 8 GB): each
batch is added to the index and scored exactly against the queries (in 384-d, where the ranking is the same).
Queries are the bundled sample documents (real paragraphs, the match stage's queries), embedded and lifted.

Per size: the index the profile's settings pick (`choose_index`: exact Flat up to index.flat_max, IVF-PQ above),
built the way build_index builds it (`fi_spark.index.build.IndexBuilder`: train on a sample, then add batches);
build seconds; bytes on disk; load seconds and resident-memory growth in a fresh process that loads the artifact
as an executor does (the path strategy's `IndexHandle.load`, memory-mapped where FAISS can); match throughput
(queries/s at match.top_k, in batches of 256 as a match partition searches); recall@10 against exact search
(brute force over the same streamed batches). Then linear fits over the IVF-PQ sizes and their value at 18M.
Results go to bench/index_scale.json; the table is printed (copy it into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from fi_spark.config import load_config
from fi_spark.config.index import IndexConfig
from fi_spark.index.artifact import save_artifact_files
from fi_spark.index.build import ExactTopK, IndexBuilder, choose_index, ivf_lists, train_size
from fi_spark.index.distribute import IndexHandle

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "fi_spark" / "resources" / "sample"
PROFILE = "fineinstructions"
DIM = 1024
BATCH = 50_000
BANK = 18_000_000
CACHE = Path("~/.cache/fi-spark/bench/index_scale_real.npz").expanduser()


# --------------------------------------------------------------------------- vectors
def real_texts() -> tuple[list[str], list[str]]:
    """(template-like texts, document texts) bundled with the repository."""
    templates = {json.loads(line)["template"] for f in sorted((REPO / "bench" / "labeled").glob("*.jsonl"))
                 for line in f.read_text(encoding="utf-8").splitlines() if line.strip()}  # fmt: skip
    for name in ("queries.jsonl", "dolly_queries.jsonl"):
        templates |= {json.loads(line)["text"] for line in (SAMPLE / name).read_text(encoding="utf-8").splitlines()}
    docs = [json.loads(line)["text"][:2000] for name in ("documents.jsonl", "dolly_documents.jsonl")
            for line in (SAMPLE / name).read_text(encoding="utf-8").splitlines()]  # fmt: skip
    return sorted(t for t in templates if t), docs


def real_vectors() -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors (384-d, unit) of the bundled templates and documents, cached after the first run."""
    if CACHE.exists():
        data = np.load(CACHE)
        return data["templates"], data["documents"]
    from fi_spark.config.embed import EmbedConfig
    from fi_spark.embed.encoder import encode, load_encoder

    templates, docs = real_texts()
    model = load_encoder(EmbedConfig())
    t, d = encode(model, templates, 64), encode(model, docs, 16)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, templates=t, documents=d)
    return t, d


def lift(x: np.ndarray) -> np.ndarray:
    """x (n, 384) -> (n, DIM) by a fixed random map with orthonormal rows: cosines are kept exactly."""
    return x @ _projection(x.shape[1])  # type: ignore[no-any-return]


_PROJECTIONS: dict[int, np.ndarray] = {}


def _projection(small: int, seed: int = 7) -> np.ndarray:
    if small not in _PROJECTIONS:
        q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(DIM, small)))
        _PROJECTIONS[small] = np.ascontiguousarray(q.T, dtype=np.float32)
    return _PROJECTIONS[small]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n bank vectors (384-d, unit) from real template vectors: a template + up to half another + noise."""
    rng = np.random.default_rng(seed)
    k, small = real.shape
    mix = rng.uniform(0.0, 0.5, size=(n, 1)).astype(np.float32)
    x = real[rng.integers(0, k, n)] + mix * real[rng.integers(0, k, n)]
    x += rng.standard_normal((n, small), dtype=np.float32) * np.float32(0.25 / np.sqrt(small))
    return unit(x)


def bank(real: np.ndarray, n: int) -> Iterator[np.ndarray]:
    """The n-vector bank in 384-d batches; batch b always holds the same vectors (seed b), whatever n is."""
    for b, lo in enumerate(range(0, n, BATCH)):
        yield synthetic(real, min(BATCH, n - lo), seed=1000 + b)


# --------------------------------------------------------------------------- measuring one size
def build(n: int, cfg: IndexConfig, real: np.ndarray, queries: np.ndarray, k: int, folder: Path) -> dict:
    """Build and save the index over the n-vector bank; recall@10 and top-1-in-top-k against exact search.

    Exact search runs on the 384-d vectors before lifting (the lift keeps inner products exactly, so the ranking
    is the same and costs 384/1024 of it); the index is built and searched in 1024-d."""
    plan = choose_index(n, DIM, cfg)
    builder = IndexBuilder(plan, DIM, cfg)
    started = time.perf_counter()
    train_s = 0.0
    if builder.needs_training:
        # a training sample: vectors drawn like the bank's (its own seed), as build_index samples template_vectors
        builder.train(lift(synthetic(real, train_size(plan, n, cfg), seed=1)))
        train_s = time.perf_counter() - started
    exact, best = ExactTopK(queries, 10), ExactTopK(queries, 1)
    exact_s = 0.0
    for batch in bank(real, n):
        builder.add(lift(batch))
        t = time.perf_counter()
        exact.update(batch)  # not part of the build time
        best.update(batch)
        exact_s += time.perf_counter() - t
    index = builder.finish()
    build_s = time.perf_counter() - started - exact_s
    lifted = lift(queries)
    recall = exact.recall(index, lifted)
    _, found = index.search(lifted, k)
    top1 = float(np.mean([b[0] in f for b, f in zip(best.ids, found, strict=True)]))
    folder.mkdir(parents=True, exist_ok=True)
    ids = folder / "ids.txt"
    ids.write_text("\n".join(f"t{i:09d}" for i in range(n)), encoding="utf-8")
    art = save_artifact_files(index, ids, n, {"model": "bench", "factory": plan.factory}, str(folder), "v")
    del builder, index
    return {
        "n": n, "kind": plan.kind, "factory": plan.factory, "build_s": round(build_s, 2), "train_s": round(train_s, 2),
        "exact_s": round(exact_s, 2), "bytes": int(art.manifest["bytes"]), "recall_at_10": round(recall, 4),
        "top1_in_k": round(top1, 4), "uri": art.uri,
    }  # fmt: skip


def probe(uri: str, cfg: IndexConfig, queries: np.ndarray, k: int, threads: int) -> dict:
    """Load time, RSS growth and q/s in a fresh interpreter, the way an executor's worker process loads it."""
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as fh:
        np.save(fh, queries)
    args = [sys.executable, "-m", "bench.index_scale", "--probe", uri, fh.name, str(k), str(threads),
            cfg.model_dump_json()]  # fmt: skip
    out = subprocess.run(args, check=True, capture_output=True, text=True, cwd=REPO).stdout
    os.unlink(fh.name)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


def run_probe(uri: str, queries_file: str, k: int, threads: int, cfg_json: str) -> None:
    faiss.omp_set_num_threads(threads)
    queries = np.load(queries_file)
    cfg = IndexConfig.model_validate_json(cfg_json)
    before = rss_mb()
    started = time.perf_counter()
    loaded = IndexHandle("v", "path", uri, cfg).load()
    load_s = time.perf_counter() - started
    after_load = rss_mb()
    reps = max(1, 2048 // len(queries))
    q = np.vstack([queries] * reps)
    loaded.index.search(q[:256], k)  # first touch of the mapped pages is part of the load, not of throughput
    touched = rss_mb()
    started = time.perf_counter()
    for lo in range(0, len(q), 256):
        loaded.index.search(q[lo : lo + 256], k)
    qps = len(q) / (time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"load_s": round(load_s, 3), "rss_load_mb": round(after_load - before, 1),
                      "rss_mb": round(max(touched, rss_mb()) - before, 1), "peak_rss_mb": round(peak, 1),
                      "qps": round(qps, 1)}))  # fmt: skip


# --------------------------------------------------------------------------- fits and output
def fit(rows: list[dict], key: str) -> tuple[float, float]:
    """Least squares y = a*N + c over the IVF-PQ rows."""
    n = np.array([r["n"] for r in rows], dtype=float)
    y = np.array([r[key] for r in rows], dtype=float)
    a, c = np.polyfit(n, y, 1)
    return float(a), float(c)


COLUMNS = [("n", "vectors", "{:,}"), ("factory", "index", "{}"), ("build_s", "build s", "{:.1f}"),
           ("bytes", "MB on disk", "{}"), ("load_s", "load s", "{:.2f}"), ("rss_mb", "RSS MB", "{:.0f}"),
           ("qps", "q/s", "{:.0f}"), ("recall_at_10", "recall@10", "{:.3f}"),
           ("top1_in_k", "top-1 in k", "{:.3f}")]  # fmt: skip


def table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [f"{r[k] / 1e6:.1f}" if k == "bytes" else fmt.format(r[k]) for k, _, fmt in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extrapolate(rows: list[dict]) -> tuple[str, dict]:
    big = [r for r in rows if r["kind"] != "flat"]
    if len(big) < 2:
        return "(need two IVF-PQ sizes to fit)", {}
    out, lines = {}, []
    for key, unit_, scale in (("build_s", "s", 1.0), ("bytes", "MB", 1e-6), ("load_s", "s", 1.0),
                              ("rss_mb", "MB", 1.0), ("ms_per_query", "ms", 1.0)):  # fmt: skip
        a, c = fit(big, key)
        at = (a * BANK + c) * scale
        out[key] = {"a": a, "c": c, "at_18m": at}
        lines.append(f"{key:>13} ~ {a * scale:.4g} * N {'+' if c >= 0 else '-'} {abs(c) * scale:.4g}"
                     f"  ->  {at:,.1f} {unit_} at N = 18M")  # fmt: skip
    return "\n".join(lines), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000, 1_000_000, 2_000_000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--queries", type=int, default=200, help="documents whose exact top-10 is computed")
    parser.add_argument("--compare", type=int, help="one size: IVF-PQ (64 / 128 B), IVF-Flat, HNSW side by side")
    parser.add_argument("--folder", type=Path, default=None, help="where artifacts go (default: a temp folder)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "index_scale.json")
    parser.add_argument("--probe", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        run_probe(args.probe[0], args.probe[1], int(args.probe[2]), int(args.probe[3]), args.probe[4])
        return
    faiss.omp_set_num_threads(args.threads)
    config = load_config(PROFILE, ["tracking.enabled=false"])
    k = config.match.top_k
    real, docs = real_vectors()
    queries = docs[: args.queries]
    root = Path(args.folder or tempfile.mkdtemp(prefix="fi-index-scale-"))
    variants = [("profile", config.index)]
    sizes = args.sizes
    if args.compare:
        sizes = [args.compare]
        base = config.index
        variants = [
            ("IVF-PQ 64 B", base.model_copy(update={"type": "ivfpq", "pq_dims": 8})),
            ("IVF-PQ 128 B (default)", base.model_copy(update={"type": "ivfpq"})),
            ("IVF-Flat 4 KB", base.model_copy(update={"factory": f"IVF{ivf_lists(args.compare, base)},Flat"})),
            ("HNSW32 4.3 KB", base.model_copy(update={"type": "hnsw"})),
        ]
    print(f"index scale: {len(real)} real templates + {len(docs)} documents (MiniLM 384-d, lifted to {DIM}-d); "
          f"profile {PROFILE}: nprobe {config.index.nprobe}, k {k}; {args.threads} threads", flush=True)  # fmt: skip
    rows = []
    for name, cfg in variants:
        for n in sizes:
            folder = root / f"{name.replace(' ', '_')}-{n}"
            row = build(n, cfg, real, queries, k, folder)
            row.update(probe(row.pop("uri"), cfg, lift(docs), k, args.threads), variant=name, nprobe=cfg.nprobe)
            row["ms_per_query"] = 1000.0 / row["qps"]
            rows.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    print()
    print(table(rows))
    text, fits = extrapolate(rows) if not args.compare else ("", {})
    if text:
        print(f"\nlinear fits over the IVF-PQ sizes (N = vectors), extrapolated to the paper's bank:\n{text}")
    if not args.compare:
        args.out.write_text(json.dumps({"rows": rows, "fits": fits, "dim": DIM, "k": k, "threads": args.threads,
                                        "cpus": os.cpu_count()}, indent=1) + "\n", encoding="utf-8")  # fmt: skip
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
