"""Two fi-spark runs on one output folder: the second refuses in one line (exit 2); locks are always released."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from tests.conftest import REPO

CLI = [sys.executable, "-m", "fi_spark.cli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
ENV.pop("SPARK_CONNECT_MODE_ENABLED", None)
ENV.pop("MLFLOW_TRACKING_URI", None)
SAMPLE = REPO / "fi_spark" / "resources" / "sample" / "documents.jsonl"

# A run held open through fi_spark.run.session.open_run: says "ready" inside it, waits for a line on stdin, then raises.
HOLDER = """
import sys
from fi_spark.config import load_config
from fi_spark.run.session import open_run
config = load_config("local", ["tracking.enabled=false", "tables.format=parquet"])
with open_run(config, sys.argv[1]):
    print("ready", flush=True)
    sys.stdin.readline()
    raise RuntimeError("the run failed")
"""


def lock_path(out):
    return out / "_run.lock"


def test_second_run_refuses_while_the_first_holds_the_folder_and_the_lock_goes_with_an_exception(tmp_path):
    """A stage run on a folder a live run holds: exit 2, one line naming pid/host/start; the holder's crash frees it."""
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        held = json.loads(lock_path(out).read_text(encoding="utf-8"))
        assert held["pid"] == holder.pid
        second = subprocess.run(
            [*CLI, "prepare-corpus", "--documents", str(SAMPLE), "--output", str(out),
             "--set", "tracking.enabled=false"],
            capture_output=True, text=True, timeout=300, env=ENV, cwd=REPO,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        errors = [line for line in second.stderr.splitlines() if line.startswith("fi-spark: error: ")]
        assert len(errors) == 1, second.stderr[-3000:]
        holder_named = f"is in use by another fi-spark run: pid {holder.pid} on host {socket.gethostname()}, started "
        assert holder_named in errors[0]
        assert not (out / "tables").exists()  # the refused run wrote nothing
        assert json.loads(lock_path(out).read_text(encoding="utf-8")) == held  # and left the lock alone
        _, err = holder.communicate("go\n", timeout=120)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert holder.returncode == 1 and "RuntimeError: the run failed" in err
    assert not lock_path(out).exists()


def test_lock_of_a_killed_run_is_taken_over_and_released_on_normal_exit(tmp_path):
    """A lock left by a dead pid: the next run takes it over with one log line, runs, and removes it at exit."""
    out = tmp_path / "run"
    out.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    body = {"pid": gone.pid, "host": socket.gethostname(), "started": now - 60, "heartbeat": now - 1,
            "command": "fi-spark pipeline", "token": "killed-run"}  # fmt: skip
    lock_path(out).write_text(json.dumps(body), encoding="utf-8")
    run = subprocess.run(
        [*CLI, "prepare-corpus", "--documents", str(SAMPLE), "--output", str(out), "--set", "tracking.enabled=false",
         "--set", "tables.format=parquet"],
        capture_output=True, text=True, timeout=300, env=ENV, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    taken = [line for line in run.stderr.splitlines() if "taking over a stale lock" in line]
    assert len(taken) == 1 and f"pid {gone.pid} is not running on this host" in taken[0], run.stderr[-3000:]
    assert "prepare_corpus: in=250 out=250" in run.stderr
    assert not lock_path(out).exists()


def test_s3_output_lock_is_an_advisory_object(moto_s3, caplog):
    """On s3:// (a local moto server) the lock is an object: a second run refuses, release deletes it; advisory."""
    import logging

    import boto3

    from fi_spark.run.lock import RunLock, RunLockedError

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="fi-lock")
    with caplog.at_level(logging.WARNING, logger="fi_spark"), RunLock("s3://fi-lock/out"):
        body = json.loads(s3.get_object(Bucket="fi-lock", Key="out/_run.lock")["Body"].read())
        assert body["pid"] == os.getpid() and body["host"] == socket.gethostname()
        try:
            RunLock("s3://fi-lock/out").acquire()
            raise AssertionError("a second lock on a held s3:// output was granted")
        except RunLockedError as exc:
            assert f"pid {os.getpid()} on host" in str(exc)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="fi-lock", Prefix="out/").get("Contents", [])]
    assert "out/_run.lock" not in keys, keys  # (pyarrow may leave an empty `out/` folder marker)
    assert any("advisory" in r.getMessage() for r in caplog.records)
