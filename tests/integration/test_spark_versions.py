"""The classic path on the oldest supported Spark, 3.5 (the main virtualenv has 4.0): jobs/pipeline.py, spark-submit.

The pyspark version is pinned here so CI is reproducible; bump it to the newest 3.5.x when one ships.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from spark_venv import spark_venv
from submit_inputs import REPO, assert_whole_pipeline, driver_log, pipeline_args, stage_lines, submit_env
from test_pairs_stages import ScriptedServer  # grounded answers, so judge and export get rows too

from fi_spark.llm.testserver import ServerSettings
from tests.jvm_options import submit_conf  # the fast-start JVM flags the 4.0 spark-submit test uses

PYSPARK_35 = "3.5.9"  # the newest 3.5.x on PyPI (EMR 7.x, Databricks Runtime 15.4 LTS-16.x)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~1 min to build the virtualenv once (a 300 MB download), then the pipeline
def test_spark_35_submit_runs_the_whole_pipeline(tmp_path):
    """jobs/pipeline.py under pyspark 3.5's spark-submit local[2]: every stage, the counts 4.0 gives, and pairs
    through judge and export (the scripted server's answers are grounded)."""
    bin_dir = spark_venv(PYSPARK_35)
    version = subprocess.run(
        [str(bin_dir / "python"), "-c", "import pyspark; print(pyspark.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == PYSPARK_35
    spark_submit = shutil.which("spark-submit", path=str(bin_dir))
    assert spark_submit, f"pyspark {PYSPARK_35} ships spark-submit in {bin_dir}"
    with ScriptedServer(ServerSettings(latency_ms=(1, 5))) as llm:
        out = subprocess.run(
            [
                spark_submit,
                "--master",
                "local[2]",
                "--conf",
                "spark.ui.enabled=false",
                *submit_conf(),
                str(REPO / "jobs" / "pipeline.py"),
            ]
            + pipeline_args(tmp_path, llm.url, bad_line=True),
            capture_output=True,
            text=True,
            timeout=1500,
            env=submit_env(bin_dir, PYTHONPATH=str(REPO)),
            cwd=REPO,
        )
    ours = driver_log(out)
    assert out.returncode == 0, ours[-4000:] or out.stderr[-4000:]
    assert f"engine cluster ready (Spark {PYSPARK_35}, delta=False, sparkContext=True, artifacts=False)" in ours, ours
    assert "(Flat, via broadcast)" in ours, ours
    assert_whole_pipeline(ours, bad_line=True)
    lines = stage_lines(ours)
    assert lines["instantiate"].startswith("instantiate: in=12 out=12 rejected=0 (none)"), ours[-3000:]
    assert lines["judge"].startswith("judge: in=12 out=4 rejected=8 (below_threshold=8)"), ours[-3000:]
    assert lines["export"].startswith("export: in=4 out=4 rejected=0 (none)"), ours[-3000:]
    exported = (tmp_path / "run" / "export" / "data" / "train-00000-of-00001.jsonl").read_text(encoding="utf-8")
    assert len(exported.splitlines()) == 4
    assert (tmp_path / "run" / "report" / "report.html").is_file()
