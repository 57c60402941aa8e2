"""GPU smoke run of the paper's recipe: the three released models served with vLLM on one GPU, the
fineinstructions profile on a small sample, then the funnel, tokens/s per LLM stage and GPU-seconds per
kept pair.

    python -m bench.gpu_smoke --output /tmp/fi-gpu                 # one GPU, vLLM installed, hub reachable
    python -m bench.gpu_smoke --output /tmp/fi-dry --dry-run       # no GPU: scripted servers, MiniLM embedder

What it does:
1. serves fineinstructions/query_templatizer (:8001), fineinstructions/template_instantiator (:8000) and
   flowaicom/Flow-Judge-v0.1 (:8002) with `vllm serve`, each with `--gpu-memory-utilization` of
   `--gpu-share` (default 0.28: three Llama-3.2-1B/3B and Phi-3.5-mini sized models fit one 80 GB GPU) and
   waits for their /health; with --dry-run it starts the scripted stand-ins of fi_spark_testkit.released instead
   (each speaks its model's contract; no weights) and the run embeds with the bundled MiniLM on the CPU;
2. runs `fi-spark pipeline --profile fineinstructions` on the first `--docs` documents and `--queries`
   queries of the bundled sample (--dry-run: four documents and three queries written here, so every row
   that results is known), each LLM stage pointed at its own server (`<section>.llm.endpoints`), the
   engine embedded (one machine), and the per-template share cap off (on a few hundred pairs the paper's
   0.0009 would allow one pair per template);
3. prints the funnel, per LLM stage its model, requests, tokens/s (prompt + completion over the stage's
   busy seconds, from the ledger) and, with one GPU under all three servers, GPU-seconds per kept pair:
   the LLM stages' busy seconds summed, and the whole pipeline's wall time (the GPU is held throughout).
   With --dry-run it also prints which model name each server was asked for.

Exit code: the pipeline's (2 = a configuration problem, 1 = a failure; a pipeline still running after
--pipeline-timeout seconds is ended, with a line saying so, and counts as a failure); 3 when a server did not
come up.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import httpx

from bench.harness.data import REPO, SAMPLE
from bench.harness.peers import run_peer
from fi_spark_testkit.released import FLOW_JUDGE, INSTANTIATOR, TEMPLATIZER, RecipeScript, start_servers

SERVED = {"genericize": (TEMPLATIZER, 8001), "instantiate": (INSTANTIATOR, 8000), "judge": (FLOW_JUDGE, 8002)}
SECTION = {"genericize": "templates", "instantiate": "instantiate", "judge": "judge"}

# --dry-run inputs and the scripted models' answers to them (tests/integration/test_gpu_smoke.py asserts the rows)
DRY_DOCS = {
    "sourdough": "A sourdough starter is a living culture of wild yeast and lactic acid bacteria kept in flour "
    "and water. Bakers feed it every day with fresh flour so that the yeast stays active and the bread rises.",
    "glacier": "A glacier moves downhill because the weight of its ice makes the lower layers deform slowly "
    "under pressure. Meltwater at the base can also let the whole glacier slide over the rock beneath it.",
    "honeybee": "A honeybee worker performs a waggle dance inside the hive to tell her sisters where flowers "
    "are found. The angle of the dance shows the direction and its length shows the distance to the food.",
    "volcano": "A volcano erupts when molten rock rises through cracks in the crust and the pressure of its "
    "gases becomes too great. Ash and lava then pour out of the vent and build the mountain layer by layer.",
}
DRY_QUERIES = {
    "How do I keep my sourdough starter alive while on vacation?": {
        "template": "How can someone keep <fi>a living food culture</fi> alive during "
        "<fi>a period away from home</fi>?",
        "compatible_document_description": "A document that explains how a living food culture is kept and fed.",
    },
    "What makes glaciers move downhill?": {
        "template": "What makes <fi>a slow natural phenomenon</fi> move the way it does?",
        "compatible_document_description": "A document that describes the physical causes of a slow natural movement.",
    },
    "tell me something": None,  # the templatizer answers text that is not JSON: a template reject
}
DRY_SCRIPT = RecipeScript(
    templates={q: t for q, t in DRY_QUERIES.items() if t}, decline=("volcano",), scores={"glacier": 2},
    garble=("honeybee",), default_score=5,
)  # fmt: skip
DRY_SETS = [
    "embed.model=minilm", "embed.device=cpu", "prepare.tokenizer=minilm", "prepare.chunk_tokens=256",
    "prepare.chunk_overlap=32", "match.min_score=-1.0", "match.max_per_doc=1", "match.token_budget=null",
    "tracking.enabled=false", "engine.shuffle_partitions=2", "llm.backoff_base_s=0.05",
]  # fmt: skip


def write_inputs(folder: Path, dry: bool, docs: int, queries: int) -> tuple[Path, Path]:
    """documents.jsonl and queries.jsonl under `folder`: the --dry-run set, or the sample's first lines."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "documents.jsonl", folder / "queries.jsonl"
    if dry:
        rows = ([{"id": k, "text": v, "source": "gpu_smoke"} for k, v in DRY_DOCS.items()],
                [{"id": f"q{i}", "text": q} for i, q in enumerate(DRY_QUERIES)])  # fmt: skip
        for path, lines in zip(paths, rows, strict=True):
            path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    else:
        for path, n in zip(paths, (docs, queries), strict=True):
            with (SAMPLE / path.name).open(encoding="utf-8") as src:
                path.write_text("".join(line for _, line in zip(range(n), src, strict=False)), encoding="utf-8")
    return paths


@contextmanager
def vllm_servers(vllm_bin: str, share: float, max_len: int, logs: Path, timeout_s: float) -> Iterator[dict[str, str]]:
    """The three released models under `vllm serve` on this machine's GPU; stage -> base URL."""
    vllm = shutil.which(vllm_bin)
    if vllm is None:
        raise SystemExit(f"gpu_smoke: {vllm_bin!r} not found: pip install vllm, or --vllm PATH (or use --dry-run)")
    logs.mkdir(parents=True, exist_ok=True)
    procs, urls = [], {}
    try:
        for stage, (model, port) in SERVED.items():
            cmd = [vllm, "serve", model, "--port", str(port), "--gpu-memory-utilization", str(share),
                   "--max-model-len", str(max_len), "--enable-prefix-caching"]  # fmt: skip
            procs.append(subprocess.Popen(cmd, stdout=(logs / f"{stage}.log").open("w"), stderr=subprocess.STDOUT))
            urls[stage] = f"http://127.0.0.1:{port}/v1"
            wait_healthy(urls[stage], procs[-1], timeout_s)  # one at a time: each sizes its cache from free memory
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(3)
        try:
            if httpx.get(url.removesuffix("/v1") + "/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(5)
    raise SystemExit(3)


def pipeline_sets(urls: dict[str, str], dry: bool) -> list[str]:
    sets = ["engine.mode=embedded", "tables.format=auto", "match.max_template_share=null"]
    sets += [f"{SECTION[stage]}.llm.endpoints=[{url}]" for stage, url in urls.items()]
    return sets + (DRY_SETS if dry else [])


def run_pipeline(output: Path, docs: Path, queries: Path, sets: list[str], timeout_s: float) -> int:
    cmd = [sys.executable, "-m", "fi_spark.cli", "pipeline", "--profile", "fineinstructions", "--documents",
           str(docs), "--queries", str(queries), "--output", str(output)]  # fmt: skip
    for item in sets:
        cmd += ["--set", item]
    print("$", " ".join(cmd), flush=True)
    run = run_peer("pipeline", cmd, timeout_s=timeout_s, cwd=REPO, echo=True)
    if run.returncode is None:
        print(f"gpu_smoke: {run.row()}", flush=True)
        return 1
    return run.returncode


def summarize(output: Path, sets: list[str], wall_s: float) -> dict[str, object]:
    """The funnel, per-stage tokens/s and GPU-seconds per kept pair, read from the run's tables."""
    from bench.harness.engine import bench_config, bench_engine, stage_context
    from fi_spark.report.collect import Tables, funnel, llm_stats
    from fi_spark.run.pipeline import layout

    config = bench_config(*sets, profile="fineinstructions", tracking=True)
    with bench_engine(config) as engine:
        plan = layout()
        tables = Tables(stage_context(engine, config, output).store, plan.tables)
        steps = [(r.unit, r.step, r.rows) for r in funnel(tables, config, None, plan.funnel)]
        stages = {s.stage: s for s in llm_stats(tables)}
        judged = tables.get("judged", "score")
        kept = judged.where(f"score >= {config.judge.threshold}").count() if judged is not None else 0
    per_stage = {
        name: {"model": config.stage_llm(name).model, "requests": s.requests, "busy_s": round(s.busy_s, 2),
               "tokens_per_s": round((s.prompt_tokens + s.completion_tokens) / s.busy_s, 1) if s.busy_s else 0.0}
        for name, s in stages.items()
    }  # fmt: skip
    busy = sum(s.busy_s for s in stages.values())
    return {
        "funnel": steps,
        "stages": per_stage,
        "kept_pairs": kept,
        "gpu_s_per_kept_pair_llm": round(busy / kept, 2) if kept else None,
        "gpu_s_per_kept_pair_wall": round(wall_s / kept, 2) if kept else None,
    }


def print_summary(summary: dict[str, object]) -> None:
    print("\nfunnel:")
    for unit, step, rows in summary["funnel"]:  # type: ignore[attr-defined]
        print(f"  {unit:<10} {step:<28} {rows:>8}")
    print("\nLLM stages (one GPU):")
    for name, s in summary["stages"].items():  # type: ignore[attr-defined]
        print(f"  {name:<12} {s['model']:<40} requests={s['requests']:<6} busy={s['busy_s']}s "
              f"tokens/s={s['tokens_per_s']}")  # fmt: skip
    llm, wall = summary["gpu_s_per_kept_pair_llm"], summary["gpu_s_per_kept_pair_wall"]
    print(f"\nkept pairs: {summary['kept_pairs']}; GPU-seconds per kept pair: {llm} (LLM stages busy), {wall} (wall)")
    rates = ", ".join(f"{name} {s['tokens_per_s']} tok/s" for name, s in summary["stages"].items())  # type: ignore[attr-defined]
    print(f"gpu_smoke: {summary['kept_pairs']} kept pairs, {wall} GPU-s per kept pair (wall); {rates}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--output", type=Path, default=None, help="run folder (inputs, tables, server logs); default: temp")
    ap.add_argument("--dry-run", action="store_true", help="scripted servers instead of vLLM, MiniLM on the CPU")
    ap.add_argument("--docs", type=int, default=200, help="sample documents (default 200)")
    ap.add_argument("--queries", type=int, default=100, help="sample queries to genericize (default 100)")
    ap.add_argument("--gpu-share", type=float, default=0.28, help="--gpu-memory-utilization of each server")
    ap.add_argument("--max-model-len", type=int, default=8192)
    ap.add_argument("--vllm", default="vllm", help="the vllm command (e.g. from a virtualenv of its own)")
    ap.add_argument("--startup-timeout", type=float, default=1200.0, help="seconds for each server's first start")
    ap.add_argument("--pipeline-timeout", type=float, default=4 * 3600.0, help="seconds the pipeline may run")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="more fi-spark overrides")
    args = ap.parse_args(argv)
    args.output = args.output or Path(tempfile.mkdtemp(prefix="gpu_smoke-"))
    docs, queries = write_inputs(args.output / "_inputs", args.dry_run, args.docs, args.queries)
    serving: AbstractContextManager[dict[str, str]]
    if args.dry_run:
        servers = start_servers(DRY_SCRIPT)
        urls = {stage: srv.url for stage, srv in servers.items()}
        serving = nullcontext(urls)
    else:
        serving = vllm_servers(
            args.vllm, args.gpu_share, args.max_model_len, args.output / "_logs", args.startup_timeout
        )
    with serving as urls:
        sets = pipeline_sets(urls, args.dry_run) + args.sets
        started = time.monotonic()
        code = run_pipeline(args.output / "run", docs, queries, sets, args.pipeline_timeout)
        wall = time.monotonic() - started
    if args.dry_run:
        for stage, srv in servers.items():
            print(f"{stage} server {srv.url} was asked for model(s) {dict(srv.models)}")
            srv.stop()
    if code != 0:
        return code
    summary = summarize(args.output / "run", sets, wall)
    print_summary(summary)
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
