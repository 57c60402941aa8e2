"""Match's GPU task profile on a real cluster manager, without a GPU: a Spark standalone master and one worker
that reports two fake GPUs (a discovery script printing addresses 0 and 1), each its own JVM on loopback.

Stage-level scheduling is refused by `local[*]` (it needs a cluster manager), so this is the smallest setup
where Spark actually schedules a task under the profile fi_spark builds and hands it a GPU address. The
mapInPandas function reports what fi_spark.embed.placement chooses inside the task; nothing is encoded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from standalone import standalone_cluster
from submit_inputs import REPO, VENV_BIN, submit_env

PROBE = """
import json
import sys

import pandas as pd
from pyspark.sql import SparkSession

from fi_spark.config import EmbedConfig
from fi_spark.embed.placement import gpu_profile, placed_embed

spark = SparkSession.builder.getOrCreate()

def where(batches):
    for batch in batches:
        embed = placed_embed(EmbedConfig(batch_size=32), 256)
        yield pd.DataFrame({"device": [embed.device] * len(batch), "batch": [embed.batch_size] * len(batch)})

frame = spark.range(8).repartition(4)
plain = frame.mapInPandas(where, "device string, batch int").collect()
profiled = frame.mapInPandas(where, "device string, batch int", profile=gpu_profile(1.0)).collect()
print("PLAIN", json.dumps(sorted({(r.device, r.batch) for r in plain})))
print("PROFILED", json.dumps(sorted({(r.device, r.batch) for r in profiled})))
"""


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory) -> Iterator[str]:
    """spark://127.0.0.1:PORT with one worker (2 cores) offering two fake GPUs, addresses 0 and 1."""
    logs = tmp_path_factory.mktemp("gpu-cluster")
    script = logs / "gpus.sh"
    script.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0", "1"]}\'\n', encoding="utf-8")
    script.chmod(0o755)
    worker_opts = f"-Dspark.worker.resource.gpu.amount=2 -Dspark.worker.resource.gpu.discoveryScript={script}"
    with standalone_cluster(logs, workers=1, cores=2, SPARK_WORKER_OPTS=worker_opts) as (master, _):
        yield master


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_gpu_profile_gives_each_match_task_a_gpu_address(gpu_cluster: str, tmp_path: Path) -> None:
    """Under gpu_profile a task gets one of the worker's GPUs and encodes on cuda:<it> with the GPU batch size;
    the same function without the profile stays on embed.device with embed.batch_size."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    spark_submit = shutil.which("spark-submit", path=str(VENV_BIN))
    assert spark_submit
    command = [spark_submit, "--master", gpu_cluster, "--conf", "spark.ui.enabled=false",
               "--conf", "spark.executor.memory=900m", "--conf", "spark.executor.cores=2",
               "--conf", "spark.executor.resource.gpu.amount=2",
               "--conf", f"spark.executorEnv.PYTHONPATH={REPO}", str(probe)]  # fmt: skip
    started = time.monotonic()
    env = {**submit_env(), "PYTHONPATH": str(REPO)}  # the driver imports fi_spark from the checkout
    out = subprocess.run(command, capture_output=True, text=True, timeout=800, env=env)
    assert out.returncode == 0, f"{time.monotonic() - started:.0f} s\n" + out.stdout[-3000:] + out.stderr[-3000:]
    rows = [line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("PLAIN ", "PROFILED "))]
    lines = {name: json.loads(value) for name, value in rows}
    assert lines["PLAIN"] == [["cpu", 32]]
    assert lines["PROFILED"] and {d for d, _ in lines["PROFILED"]} <= {"cuda:0", "cuda:1"}
    assert {b for _, b in lines["PROFILED"]} == {256}
