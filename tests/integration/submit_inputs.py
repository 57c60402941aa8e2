"""What the spark-submit tests share: small inputs, the pipeline's arguments, the environment a virtualenv needs.

spark-submit from pyspark's wheel is a shell script that runs `python3` from PATH to find Spark's home, and
Spark starts Python workers with PYSPARK_PYTHON: both must be the virtualenv's, or the system Python
(without pyspark or fi_spark) is used. So the environment puts the virtualenv's bin first on PATH.
"""

from __future__ import annotations

import itertools
import os
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
        "instantiate.prompt=instantiate.v1",  # the prompts the test servers' scripted answers fit
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
