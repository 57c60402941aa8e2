"""The fault-injecting OpenAI-compatible test server, for the benches: in-process or in a subprocess of its own.

This is the only module of bench/ that imports the server: it lives in `fi_spark_testkit.fault_server` (outside
the wheel).

A subprocess keeps the server's CPU off the measured interpreter (bench/llm_client.py, bench/scale.py):
`fault_server_process(settings)` runs `python -m bench.harness.fault_server` with the settings as JSON and, for
a server with scripted answers, a `factory` ("module:function" returning a FaultServer subclass, e.g.
"bench.scale:scale_server_class"); it waits for its `listening URL` line and ends the process on the way out.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.harness.data import REPO
from fi_spark_testkit.fault_server import FaultServer, ServerSettings, serve_for

__all__ = ["ServerSettings", "FaultServer", "fault_server_process", "unit"]


def unit(*parts: object) -> float:
    """A deterministic draw in [0, 1) from `parts` (the server's own rule for latencies and faults)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@contextmanager
def fault_server_process(
    settings: ServerSettings, factory: str | None = None, max_seconds: float = 6 * 3600, start_timeout_s: float = 60
) -> Iterator[str]:
    """The server in a subprocess; yields its base URL (…/v1) and terminates it when the block ends."""
    cmd = [sys.executable, "-m", "bench.harness.fault_server", "--settings", json.dumps(dataclasses.asdict(settings)),
           "--max-seconds", str(max_seconds)]  # fmt: skip
    if factory:
        cmd += ["--factory", factory]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        stdout = proc.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline().strip()), daemon=True)
        reader.start()
        reader.join(start_timeout_s)
        if not line or not line[0].startswith("listening "):
            raise RuntimeError(f"the fault server did not start in {start_timeout_s:g} s: {line[:1]!r}")
        yield line[0].split(" ", 1)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def settings_from_json(text: str) -> ServerSettings:
    raw: dict[str, Any] = json.loads(text)
    return ServerSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="the fault server in this process until --max-seconds")
    ap.add_argument("--settings", default="{}", help="ServerSettings as JSON")
    ap.add_argument("--factory", default=None, help="module:function returning a FaultServer subclass")
    ap.add_argument("--max-seconds", type=float, default=6 * 3600)
    args = ap.parse_args(argv)
    cls = FaultServer
    if args.factory:
        module, _, name = args.factory.partition(":")
        cls = getattr(importlib.import_module(module), name)()
    serve_for(cls(settings_from_json(args.settings)), args.max_seconds)


if __name__ == "__main__":
    main()
