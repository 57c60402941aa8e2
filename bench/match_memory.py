"""Benchmark: where the match stage's memory goes -- RSS at each stage's start, its peak, and match's timeline.

    python -m bench.match_memory 1000                  # ~7 min on 2 shared cores
    python -m bench.match_memory 1000 --fake-encoder   # the same without the encoder's memory

Runs the pipeline's stages up to match (as bench.scale does: the first N documents of the benchmark corpus,
the embedded Sail engine, its scripted LLM server for genericize) in this process, sampling this process's
RSS and thread count every 0.2 s. Sail runs the Python UDFs as threads of this process, so this is the whole
footprint. Prints one line per stage (seconds, RSS at start / peak / end in MB) and match's RSS and thread
count every ~10 s: memory that climbs one step per task (and per new thread) is per-thread, not per-row.
The scripted server answers genericize.v1's schema, so genericize runs with that prompt here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import psutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"

from bench.harness.data import write_corpus_slice
from bench.harness.fault_server import fault_server_process
from bench.scale import SCRIPTED_PROMPTS, scale_server_class, server_settings  # noqa: F401 - the factory by name


def fake_encode(model: object, texts: list[str], batch_size: int) -> np.ndarray:
    """Unit vectors seeded by the text: the match stage's data flow without the encoder."""
    out = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(384) for t in texts]) if texts else []
    out = np.asarray(out, dtype=np.float32).reshape(len(texts), 384)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("docs", type=int)
    ap.add_argument("--fake-encoder", action="store_true", help="random unit vectors instead of the encoder")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    overrides = list(SCRIPTED_PROMPTS)
    if args.fake_encoder:
        import fi_spark.embed.documents

        fi_spark.embed.documents.encode = fake_encode  # type: ignore[assignment]
        overrides.append("match.min_score=-1")  # random vectors score ~0: keep every candidate flowing
    from fi_spark.cli import sample_path
    from fi_spark.config import load_config
    from fi_spark.run.pipeline import run_spec
    from fi_spark.run.session import open_run, run_stage
    from fi_spark.stages.registry import STAGES, PipelineInputs

    me, samples, stage = psutil.Process(), [], {"name": "-"}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            samples.append((time.monotonic(), stage["name"], me.memory_info().rss / 2**20, me.num_threads()))

    threading.Thread(target=sample, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="bench-match-memory-"))
    settings = server_settings(256, "200,800", 0.02)
    try:
        with fault_server_process(settings, factory="bench.scale:scale_server_class") as url:
            docs = write_corpus_slice(args.docs, folder / "documents.jsonl")
            config = load_config("local", [
                f"llm.endpoints=[{url}]", "llm.model=test-model", "templates.sample_queries=null",
                "instantiate.sample_pairs=null", "match.max_per_template=null", *overrides, *args.overrides,
            ])  # fmt: skip
            inputs = PipelineInputs(documents=str(docs), queries=sample_path("queries.jsonl"))
            with open_run(config, str(folder / "out")) as (ctx, tracker), tracker.run("pipeline"):
                for spec in STAGES[: [s.name for s in STAGES].index("match") + 1]:
                    stage["name"] = spec.name
                    t0, start = time.monotonic(), me.memory_info().rss / 2**20
                    result = run_stage(tracker, spec.name, lambda spec=spec: run_spec(spec, ctx, inputs))
                    peak = max([s[2] for s in samples if s[0] >= t0] + [start])
                    end = me.memory_info().rss / 2**20
                    print(f"{spec.name:<16} {time.monotonic() - t0:>7.1f} s  RSS start {start:>6.0f} peak {peak:>6.0f} "
                          f"end {end:>6.0f} MB  {result.rows_in} -> {result.rows_out}", flush=True)  # fmt: skip
    finally:
        stop.set()
        shutil.rmtree(folder, ignore_errors=True)
    timeline = [s for s in samples if s[1] == "match"]
    print("match timeline (s, RSS MB, threads):", json.dumps([(round(t - timeline[0][0]), round(r), n)
                                                               for t, _, r, n in timeline[::50]]))  # fmt: skip


if __name__ == "__main__":
    main()
