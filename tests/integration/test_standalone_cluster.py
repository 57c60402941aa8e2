"""jobs/pipeline.py spark-submitted to a real Spark standalone cluster: a master and two 1-core workers, each
its own JVM on loopback, started from the pyspark wheel's spark-class.

fi_spark reaches the executors the way it reaches a real cluster: in the zip deploy/make_pyfiles.py builds,
shipped with --py-files. Nothing sets PYTHONPATH for the driver, the workers or the executors, and a probe job
shows the executors import fi_spark from that zip.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from standalone import standalone_cluster
from submit_inputs import REPO, VENV_BIN, assert_whole_pipeline, driver_log, pipeline_args, submit_env

from fi_spark_testkit.fault_server import FaultServer, ServerSettings
from tests.jvm_options import submit_conf

PROBE = """
import json

import fi_spark
import pandas as pd
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()

def where(batches):
    import fi_spark
    for batch in batches:
        yield pd.DataFrame({"file": [fi_spark.__file__] * len(batch)})

rows = spark.range(8).repartition(4).mapInPandas(where, "file string").collect()
print("EXECUTORS", json.dumps(sorted({r.file for r in rows})))
print("DRIVER", fi_spark.__file__)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    """spark://127.0.0.1:PORT with two registered workers (1 core, 1 GiB each)."""
    with standalone_cluster(tmp_path_factory.mktemp("cluster"), workers=2, cores=1) as (master, _):
        yield master


@pytest.fixture(scope="module")
def pyfiles(tmp_path_factory) -> Path:
    sys.path.insert(0, str(REPO / "deploy"))
    try:
        make_pyfiles = importlib.import_module("make_pyfiles")
    finally:
        sys.path.remove(str(REPO / "deploy"))
    return make_pyfiles.make_zip(tmp_path_factory.mktemp("dist") / "fi_spark.zip")


def submit(master: str, zipped: Path, script: Path, args: list[str]) -> subprocess.CompletedProcess:
    spark_submit = shutil.which("spark-submit", path=str(VENV_BIN))
    assert spark_submit
    command = [spark_submit, "--master", master, "--py-files", str(zipped)]
    command += ["--conf", "spark.ui.enabled=false", "--conf", "spark.executor.memory=900m"]
    command += ["--conf", "spark.cores.max=2", "--conf", "spark.executor.cores=1", *submit_conf()]
    return subprocess.run(
        [*command, str(script), *args], capture_output=True, text=True, timeout=1500, env=submit_env(), cwd=REPO
    )


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_executors_import_fi_spark_from_the_shipped_zip(cluster: str, pyfiles: Path, tmp_path: Path) -> None:
    """--py-files puts the zip first on the executors' (and driver's) path, ahead of any installed copy."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    out = submit(cluster, pyfiles, probe, [])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    executors = next(line for line in out.stdout.splitlines() if line.startswith("EXECUTORS"))
    files = json.loads(executors.split(" ", 1)[1])
    assert files and all(f.endswith("fi_spark.zip/fi_spark/__init__.py") for f in files), executors
    driver = next(line for line in out.stdout.splitlines() if line.startswith("DRIVER"))
    assert driver.endswith("fi_spark.zip/fi_spark/__init__.py"), driver


@pytest.mark.slow
@pytest.mark.timeout(1800)  # minutes when idle, far more on a loaded 2-core machine
def test_pipeline_on_a_two_worker_standalone_cluster(cluster: str, pyfiles: Path, tmp_path: Path) -> None:
    """The whole pipeline runs on the standalone cluster with default index settings (broadcast)."""
    with FaultServer(ServerSettings(latency_ms=(1, 5))) as llm:
        out = submit(cluster, pyfiles, REPO / "jobs" / "pipeline.py", pipeline_args(tmp_path, llm.url))
        stats = llm.snapshot()
    ours = driver_log(out)
    assert out.returncode == 0, ours[-4000:] or out.stderr[-4000:]
    assert "engine cluster ready (Spark 4.0.1, delta=False, sparkContext=True, artifacts=False)" in ours, ours
    assert "(Flat, via broadcast)" in ours, ours
    assert_whole_pipeline(ours)
    assert (stats["requests"], stats["ok"]) == (24, 24)  # 12 genericize + 12 instantiate, each sent once
    assert (tmp_path / "run" / "tables" / "matches").is_dir()
