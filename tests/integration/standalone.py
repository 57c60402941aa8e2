"""A Spark standalone cluster for the tests: a master and workers as separate JVM processes (pyspark's
spark-class), started and torn down by one context manager (test_standalone_cluster, test_executor_loss,
test_match_gpu_profile share it)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from submit_inputs import VENV_BIN, submit_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(what)


@contextmanager
def standalone_cluster(
    logs: Path, workers: int = 2, cores: int = 1, **env: str
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """spark://127.0.0.1:PORT with `workers` registered workers (`cores` cores, 1 GiB each), their logs under
    `logs`; yields the master URL and the worker processes (a test may kill one). `env`: SPARK_WORKER_OPTS etc."""
    spark_class = shutil.which("spark-class", path=str(VENV_BIN))
    assert spark_class, "pyspark ships spark-class next to the interpreter"
    environ = submit_env(SPARK_WORKER_DIR=str(logs / "work"), SPARK_LOG_DIR=str(logs), **env)
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> subprocess.Popen:
        out = (logs / f"{name}.log").open("w")
        proc = subprocess.Popen([spark_class, *args], stdout=out, stderr=subprocess.STDOUT, env=environ)
        procs.append(proc)
        return proc

    port = free_port()
    master = f"spark://127.0.0.1:{port}"
    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(free_port()))  # fmt: skip
        nodes = [
            start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                  "--cores", str(cores), "--memory", "1g", "--webui-port", str(free_port()))
            for i in range(1, workers + 1)
        ]  # fmt: skip
        master_log = logs / "master.log"
        wait_until(
            lambda: master_log.read_text(errors="replace").count("Registering worker") >= workers,
            300,  # JVM start-up: seconds on an idle machine, minutes on a loaded 2-core one
            f"{workers} worker(s) did not register with {master}: {master_log.read_text(errors='replace')[-2000:]}",
        )
        yield master, nodes
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
