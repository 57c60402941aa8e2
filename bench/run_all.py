"""Run every benchmark in bench/ and write ONE Markdown table: benchmark, command, its summary line, seconds.

    python -m bench.run_all                        # every bench in its quick form (see BENCHES)
    python -m bench.run_all --only journal,minhash  # a subset
    python -m bench.run_all --full --out /tmp/RESULTS.md   # each bench's own defaults (hours)

Each benchmark runs as its own process (`nice -n 15 python -m bench.<name>`, from the repository root, with
this interpreter and PYTHONPATH = the repository, through bench.harness.peers.run_peer: --timeout seconds, then
its whole process session is ended) and ends with one `name: ...` summary line; the table takes the last such
line of its output (or says that none came). Quick forms (the default) and full forms (--full), per benchmark:

| benchmark | quick | full |
|---|---|---|
| prepare_corpus | `--sizes 1000` | defaults (1k + 10k, both engines) |
| match | `--index-sizes 10000` | defaults |
| llm_client | `--quick --no-local-model` | `--no-local-model` unless the local vLLM server is serving |
| journal | `--answers 5000 --requests 1000` | defaults |
| minhash | `--docs 2000` | defaults |
| dedup | `--docs 2000` (`--skip-datatrove` without its virtualenv) | defaults |
| dedup_quality | `--bases 200 --distractors 200` | defaults |
| html_extract | defaults (no quick form) | defaults |
| scale | `--quick` | `--sizes 1000,10000` (100k takes hours on 2 cores: run `python -m bench.scale` itself) |
| excerpts, cost_per_pair, judge_scores | small `--limit`s | defaults |
| models | defaults | defaults |
| check_export | `--check-export RUN DOCUMENTS` | same |

Skipped, with the reason in the table: the real-model benchmarks (excerpts, cost_per_pair, judge_scores)
unless the local vLLM server is serving on llm.local.port (`fi-spark serve-llm --detach`); models unless
both of its servers are; check_export unless --check-export names a finished run; anything whose input
(the benchmark corpus, shared/data/web) is not found. The corpus and web pages are looked up in the first
`shared/` folder above the repository (or --shared); benchmarks without a --corpus option read the
FI_SPARK_BENCH_CORPUS environment variable, which this script sets.

The file (default bench/RESULTS.md, or --out) and stdout get the same Markdown: the machine (cores, CPU,
memory), key package versions (pyspark, pysail, faiss, sentence-transformers, torch, vllm of the local
server's virtualenv if installed), the commit, then the table. The last line is `run_all: ...`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.data import REPO
from bench.harness.datatrove import datatrove_installed
from bench.harness.peers import run_peer
from bench.harness.real_model import local_vllm_url, serving

SUMMARY_NAMES = {"html_extract": "html"}  # benchmarks whose summary line has another name than the file
PACKAGES = ("pyspark", "pysail", "faiss-cpu", "sentence-transformers", "torch", "pyarrow", "mlflow")


@dataclass
class Bench:
    name: str
    quick: list[str] = field(default_factory=list)
    full: list[str] = field(default_factory=list)
    needs: tuple[str, ...] = ()  # corpus | web | vllm | vllm2 | export | datatrove
    corpus_flag: bool = False  # takes --corpus PATH


BENCHES = [
    Bench("prepare_corpus", ["--sizes", "1000"], needs=("corpus",), corpus_flag=True),
    Bench("match", ["--index-sizes", "10000"], needs=("corpus",), corpus_flag=True),
    Bench("llm_client", ["--quick", "--no-local-model"]),
    Bench("journal", ["--answers", "5000", "--requests", "1000"]),
    Bench("minhash", ["--docs", "2000"], needs=("corpus",)),
    Bench("dedup", ["--docs", "2000"], needs=("corpus", "datatrove")),
    Bench("dedup_quality", ["--bases", "200", "--distractors", "200"], needs=("corpus",)),
    Bench("html_extract", needs=("web",)),
    Bench("scale", ["--quick"], ["--sizes", "1000,10000"], needs=("corpus",), corpus_flag=True),
    Bench("excerpts", ["--arms", "d", "--limit", "4"], needs=("vllm",)),
    Bench("cost_per_pair", ["--limit", "4"], needs=("vllm",)),
    Bench("decline_stop", needs=("vllm",)),
    Bench("judge_scores", ["--compare", "--sample", "8", "--candidates", "e"], needs=("vllm",)),
    Bench("models", needs=("vllm", "vllm2")),
    Bench("check_export", needs=("export",)),
    Bench("gpu_smoke", ["--dry-run"], ["--dry-run"]),  # scripted servers here; on a GPU run it without --dry-run
]


@dataclass
class Outcome:
    bench: str
    command: str
    summary: str
    seconds: float | None
    status: str  # ok | failed (rc N) | timeout | skipped


def find_shared(explicit: Path | None) -> Path | None:
    if explicit:
        return explicit
    for folder in REPO.parents:
        if (folder / "shared").is_dir():
            return folder / "shared"
    return None


def missing(bench: Bench, shared: Path | None, args: argparse.Namespace) -> str | None:
    """Why `bench` cannot run here, or None."""
    corpus = shared / "bench" / "corpus.jsonl.gz" if shared else None
    for need in bench.needs:
        if need == "corpus" and not (corpus and corpus.exists()):
            return "the benchmark corpus shared/bench/corpus.jsonl.gz is not here (--shared)"
        if need == "web" and not (shared and (shared / "data" / "web").is_dir()):
            return "shared/data/web is not here (--shared)"
        if need == "vllm" and not serving(local_vllm_url()):
            return f"needs the local vLLM server ({local_vllm_url()}): `fi-spark serve-llm --detach`"
        if need == "vllm2" and not serving(local_vllm_url(8012)):
            return "needs a second local server on port 8012 (bench/models.py docstring)"
        if need == "export" and not args.check_export:
            return "needs a finished run's export: --check-export RUN_DIR DOCUMENTS"
    return None


def command_for(bench: Bench, shared: Path | None, args: argparse.Namespace) -> list[str]:
    extra = bench.full if args.full else bench.quick
    if bench.corpus_flag and shared:
        extra = [*extra, "--corpus", str(shared / "bench" / "corpus.jsonl.gz")]
    if bench.name == "html_extract" and shared:
        extra = [*extra, "--data", str(shared / "data" / "web")]
    if bench.name == "dedup" and not datatrove_installed():
        extra = [*extra, "--skip-datatrove"]  # building its virtualenv needs PyPI and minutes
    if bench.name == "llm_client" and args.full and not serving(local_vllm_url()):
        extra = [*extra, "--no-local-model"]
    if bench.name == "check_export":
        extra = list(args.check_export or ["RUN_DIR", "DOCUMENTS"])
    return ["-m", f"bench.{bench.name}", *extra]


def summary_line(bench: str, stdout: str) -> str | None:
    """The last `name: ...` line of the output (name = the benchmark's summary name)."""
    prefix = SUMMARY_NAMES.get(bench, bench) + ": "
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip().startswith(prefix)]
    return lines[-1] if lines else None


def run_one(bench: Bench, shared: Path | None, args: argparse.Namespace, log_dir: Path) -> Outcome:
    cmd = command_for(bench, shared, args)
    shown = "python " + " ".join(cmd)
    why = missing(bench, shared, args)
    if why:
        return Outcome(bench.name, shown, f"skipped: {why}", None, "skipped")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if shared:
        env["FI_SPARK_BENCH_CORPUS"] = str(shared / "bench" / "corpus.jsonl.gz")
    print(f"[run_all] {shown}", file=sys.stderr, flush=True)
    log = log_dir / f"{bench.name}.log"
    run = run_peer(bench.name, ["nice", "-n", str(args.nice), sys.executable, *cmd], timeout_s=args.timeout,
                   env=env, cwd=REPO)  # fmt: skip
    log.write_text(run.stderr + "\n--- stdout ---\n" + run.stdout, encoding="utf-8")
    line = summary_line(bench.name, run.stdout)
    if run.returncode is None:
        line = line or f"no summary line; stopped after {args.timeout} s"
        return Outcome(bench.name, shown, line, run.seconds, "timeout")
    status = "ok" if run.returncode == 0 and line else f"failed (rc {run.returncode})"
    return Outcome(bench.name, shown, line or f"no summary line (log: {log})", run.seconds, status)


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:  # vLLM lives in the local server's own virtualenv (fi_spark.serving.local), not in this one
        from fi_spark.config import LocalLLMServerConfig
        from fi_spark.serving.local import cache_root

        marker = json.loads((cache_root(LocalLLMServerConfig()) / "installed.json").read_text())
        out["vllm"] = f"{marker['vllm']} (local server virtualenv)"
    except (OSError, ValueError, KeyError, ImportError):
        out["vllm"] = "not installed"
    return out


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {"cores": str(os.cpu_count()), "cpu": cpu, "memory": mem, "load at start": load,
            "python": platform.python_version(), "os": platform.platform()}  # fmt: skip


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "?"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(outcomes: list[Outcome], info: dict[str, str], versions: dict[str, str], mode: str) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python -m bench.run_all` ({mode}) on {when}, commit {commit()}. Each benchmark's docstring says "
        "what it measures; the README's Benchmarks section discusses the numbers.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "| benchmark | command | summary line | seconds |",
        "|---|---|---|---|",
    ]
    for o in outcomes:
        secs = f"{o.seconds:.0f}" if o.seconds is not None else "-"
        summary = o.summary if o.status in ("ok", "skipped") else f"**{o.status}**: {o.summary}"
        lines.append(f"| {o.bench} | `{cell(o.command)}` | {cell(summary)} | {secs} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=None, help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks not to run")
    parser.add_argument("--full", action="store_true", help="each benchmark's full form instead of its quick one")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--shared", type=Path, default=None, help="folder holding bench/corpus.jsonl.gz, data/web")
    parser.add_argument("--check-export", nargs=2, metavar=("RUN_DIR", "DOCUMENTS"), default=None)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one benchmark may run")
    parser.add_argument("--nice", type=int, default=15)
    parser.add_argument("--logs", type=Path, default=None, help="folder for each benchmark's log (default: temp)")
    args = parser.parse_args()
    names = [b.name for b in BENCHES]
    only = args.only.split(",") if args.only else names
    unknown = sorted(set(only + [s for s in args.skip.split(",") if s]) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(names)}")
    on_disk = {p.stem for p in (REPO / "bench").glob("*.py")} - {"run_all", "__init__"}
    if on_disk - set(names):  # a new bench must be listed here, with its quick form
        print(f"[run_all] not listed in BENCHES: {sorted(on_disk - set(names))}", file=sys.stderr)
    shared = find_shared(args.shared)
    log_dir = args.logs or Path(os.environ.get("TMPDIR", "/tmp")) / f"run_all-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    info, versions = machine(), package_versions()
    chosen = [b for b in BENCHES if b.name in only and b.name not in args.skip.split(",")]
    outcomes = [run_one(b, shared, args, log_dir) for b in chosen]
    mode = ("full" if args.full else "quick forms") + (f", --only {args.only}" if args.only else "")
    mode += f", --skip {args.skip}" if args.skip else ""
    text = markdown(outcomes, info, versions, mode)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    ok = sum(o.status == "ok" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    total = sum(o.seconds or 0 for o in outcomes)
    print(f"run_all: {ok} ok, {len(outcomes) - ok - skipped} failed, {skipped} skipped of {len(outcomes)} "
          f"in {total:.0f} s -> {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
