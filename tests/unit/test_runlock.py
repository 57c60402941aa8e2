"""The output folder's run lock (fi_spark.run.lock): one live run per folder, stale locks taken over, released."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from fi_spark.config import ConfigError
from fi_spark.run.lock import LOCK_NAME, RunLock, RunLockedError


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder, pid: int, host: str, heartbeat_age_s: float = 0.0, token: str = "other") -> None:
    now = time.time()
    body = {"pid": pid, "host": host, "started": now - 3600, "heartbeat": now - heartbeat_age_s,
            "command": "fi-spark pipeline", "token": token}  # fmt: skip
    (folder / LOCK_NAME).write_text(json.dumps(body), encoding="utf-8")


def read_lock(folder) -> dict:
    return json.loads((folder / LOCK_NAME).read_text(encoding="utf-8"))


def test_lock_names_this_run_and_is_removed_on_release(tmp_path):
    """The lock file holds pid, host, start time and heartbeat while held, and is gone after."""
    with RunLock(str(tmp_path)):
        body = read_lock(tmp_path)
        assert body["pid"] == os.getpid() and body["host"] == socket.gethostname()
        assert abs(body["started"] - time.time()) < 60 and body["heartbeat"] >= body["started"]
    assert not (tmp_path / LOCK_NAME).exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary files left behind


def test_second_lock_on_a_held_folder_refuses_naming_the_holder(tmp_path):
    """A live holder (this very process): RunLockedError, a ConfigError naming pid, host, start time and the fix."""
    with RunLock(str(tmp_path)):
        with pytest.raises(RunLockedError) as info:
            RunLock(str(tmp_path)).acquire()
        assert read_lock(tmp_path)["pid"] == os.getpid()  # the holder's lock is untouched
    msg = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert f"pid {os.getpid()} on host {socket.gethostname()}, started " in msg
    assert "Wait for it to finish or use another --output" in msg and LOCK_NAME in msg and "\n" not in msg


def test_lock_of_a_dead_pid_is_taken_over_with_one_log_line(tmp_path, caplog):
    """A lock left by a killed run on this host (its pid is gone) is taken over, saying so once."""
    pid = dead_pid()
    write_lock(tmp_path, pid, socket.gethostname())
    with caplog.at_level(logging.WARNING, logger="fi_spark"), RunLock(str(tmp_path)):
        assert read_lock(tmp_path)["pid"] == os.getpid()
    lines = [r.getMessage() for r in caplog.records if "stale" in r.getMessage()]
    assert len(lines) == 1 and f"pid {pid} is not running on this host" in lines[0], lines


def test_other_host_lock_is_live_until_its_heartbeat_is_stale(tmp_path):
    """Another host's pid cannot be checked: a fresh heartbeat refuses, an old one is taken over."""
    write_lock(tmp_path, 1, "elsewhere.example", heartbeat_age_s=5)
    with pytest.raises(RunLockedError, match="pid 1 on host elsewhere.example"):
        RunLock(str(tmp_path), stale_after_s=60).acquire()
    write_lock(tmp_path, 1, "elsewhere.example", heartbeat_age_s=120)
    with RunLock(str(tmp_path), stale_after_s=60):
        assert read_lock(tmp_path)["host"] == socket.gethostname()


def test_released_when_the_run_raises(tmp_path):
    """An exception inside the run still removes the lock."""
    with pytest.raises(RuntimeError, match="boom"), RunLock(str(tmp_path)):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_heartbeat_refreshes_and_release_keeps_a_lock_that_is_no_longer_ours(tmp_path):
    """The heartbeat moves forward; a lock taken over meanwhile is neither refreshed nor removed by the old run."""
    lock = RunLock(str(tmp_path), heartbeat_s=0.05).acquire()
    first = read_lock(tmp_path)["heartbeat"]
    deadline = time.time() + 10
    while read_lock(tmp_path)["heartbeat"] == first and time.time() < deadline:
        time.sleep(0.05)
    assert read_lock(tmp_path)["heartbeat"] > first
    write_lock(tmp_path, 4242, "elsewhere.example", token="taken-over")
    time.sleep(0.3)
    lock.release()
    assert read_lock(tmp_path)["token"] == "taken-over"


def test_unreadable_lock_file_is_replaced(tmp_path):
    """A half-written lock (a run killed while creating it, on a file system without hard links) is stale."""
    (tmp_path / LOCK_NAME).write_text('{"pid": 12', encoding="utf-8")
    with RunLock(str(tmp_path)):
        assert read_lock(tmp_path)["pid"] == os.getpid()
