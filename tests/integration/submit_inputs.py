"""What the spark-submit tests share: small inputs, the pipeline's arguments, the environment a virtualenv needs.

spark-submit from pyspark's wheel is a shell script that runs `python3` from PATH to find Spark's home, and
Spark starts Python workers with PYSPARK_PYTHON: both must be the virtualenv's, or the system Python
(without pyspark or fi_spark) is used. So the environment puts the virtualenv's bin first on PATH.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.jvm_options import FAST_JVM

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "fi_spark" / "resources" / "sample"
VENV_BIN = Path(sys.executable).parent


def head(src: Path, dest: Path, n: int) -> Path:
    with src.open(encoding="utf-8") as fh:
        dest.write_text("".join(itertools.islice(fh, n)), encoding="utf-8")
    return dest


def pipeline_args(tmp_path: Path, llm_url: str, bad_line: bool = False) -> list[str]:
    """jobs/pipeline.py arguments: 12 sample documents (+ one malformed line) and queries, Parquet, the test server."""
    docs = head(SAMPLE / "documents.jsonl", tmp_path / "docs.jsonl", 12)
    if bad_line:
        docs.write_text(docs.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    queries = head(SAMPLE / "queries.jsonl", tmp_path / "queries.jsonl", 12)
    sets = [
        "tables.format=parquet",
        "tracking.enabled=false",
        "engine.shuffle_partitions=2",
        f"llm.endpoints=[{llm_url}]",
        "llm.model=test-model",
        "match.min_score=-1.0",  # every document matches the (single) test-server template
        "match.token_budget=null",  # ... and is not held back by the pre-instantiation token budget
        "instantiate.prompt=instantiate.v1",
        "judge.threshold=4",  # the counts below are at the paper's cut (the local profile keeps 3)
        "templates.prompt=genericize.v1",
        "templates.extractive_only=false",  # the prompts the test servers' scripted answers fit
        "judge.prompt=judge.v2",
    ]
    return ["--documents", str(docs), "--queries", str(queries), "--output", str(tmp_path / "run")] + [
        a for s in sets for a in ("--set", s)
    ]


def submit_env(bin_dir: Path = VENV_BIN, **extra: str) -> dict[str, str]:
    """`bin_dir` (a virtualenv's bin) first on PATH, its python for driver and workers, loopback, no PYTHONPATH;
    standalone daemons (master, workers) get the tests' fast-start JVM flags (tests/jvm_options.py)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_CONNECT_MODE_ENABLED")}
    env.pop("MLFLOW_TRACKING_URI", None)
    python = sys.executable if bin_dir == VENV_BIN else str(bin_dir / "python")
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYSPARK_PYTHON=python,
        PYSPARK_DRIVER_PYTHON=python,
        SPARK_LOCAL_IP="127.0.0.1",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        SPARK_DAEMON_JAVA_OPTS=FAST_JVM,
    )
    env.update(extra)
    return env


def driver_log(out) -> str:
    """Our log lines (HH:MM:SS LEVEL ...) from spark-submit, which merges the driver's stderr into stdout."""
    return "\n".join(line for line in (out.stdout + out.stderr).splitlines() if line[:8].count(":") == 2)


def stage_lines(log: str) -> dict[str, str]:
    """The `stage NAME: in=.. out=.. rejected=..` summary line of each stage, by stage name."""
    out = {}
    for line in log.splitlines():
        if " fi_spark: stage " in line and ": in=" in line:
            text = line.split(" fi_spark: stage ", 1)[1]
            out[text.split(":", 1)[0]] = text
    return out


def assert_whole_pipeline(log: str, bad_line: bool = False) -> None:
    """Every stage ran, with the counts the 12 documents / 12 queries and the test server give."""
    lines = stage_lines(log)
    prepared = "in=13 out=12 rejected=1 (malformed_json=1)" if bad_line else "in=12 out=12 rejected=0"
    assert lines["prepare_corpus"].startswith(f"prepare_corpus: {prepared}"), log[-3000:]
    assert lines["ingest_queries"].startswith("ingest_queries: in=12 out=12 rejected=0"), log[-3000:]
    assert lines["genericize"].startswith("genericize: in=12 out=12 rejected=0"), log[-3000:]
    assert lines["match"].startswith("match: in=12 out=12 rejected=0"), log[-3000:]
    assert lines["instantiate"].startswith("instantiate: in=12 "), log[-3000:]  # test-server answers: ungrounded
    assert {"build_index", "judge", "export", "report"} <= set(lines), log[-3000:]


def submit_local_pipeline(bin_dir: Path, tmp_path: Path) -> str:
    """jobs/pipeline.py under `bin_dir`'s spark-submit, local[2], against the scripted LLM server (grounded
    answers, so judge and export get rows); checks every stage, the pairs exported and the report, and returns
    our log lines."""
    from test_pairs_stages import ScriptedServer

    from fi_spark_testkit.fault_server import ServerSettings
    from tests.jvm_options import submit_conf

    spark_submit = shutil.which("spark-submit", path=str(bin_dir))
    assert spark_submit, f"pyspark ships spark-submit next to the interpreter in {bin_dir}"
    with ScriptedServer(ServerSettings(latency_ms=(1, 5))) as llm:
        command = [spark_submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false", *submit_conf()]
        out = subprocess.run(
            [*command, str(REPO / "jobs" / "pipeline.py"), *pipeline_args(tmp_path, llm.url, bad_line=True)],
            capture_output=True,
            text=True,
            timeout=1500,
            env=submit_env(bin_dir, PYTHONPATH=str(REPO)),
            cwd=REPO,
        )
    ours = driver_log(out)
    assert out.returncode == 0, ours[-4000:] or out.stderr[-4000:]
    assert "(Flat, via broadcast)" in ours, ours
    assert_whole_pipeline(ours, bad_line=True)
    lines = stage_lines(ours)
    assert lines["instantiate"].startswith("instantiate: in=12 out=12 rejected=0 (none)"), ours[-3000:]
    assert lines["judge"].startswith("judge: in=12 out=4 rejected=8 (below_threshold=8)"), ours[-3000:]
    assert lines["export"].startswith("export: in=4 out=4 rejected=0 (none)"), ours[-3000:]
    exported = (tmp_path / "run" / "export" / "data" / "train-00000-of-00001.jsonl").read_text(encoding="utf-8")
    assert len(exported.splitlines()) == 4
    assert (tmp_path / "run" / "report" / "report.html").is_file()
    return ours
