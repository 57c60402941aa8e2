"""Timing and memory sampling shared by the benches.

- `PeakRss`: the peak resident memory of this process and its children, sampled by a thread (psutil), with
  a reset per measured step (bench/scale.py's stage by stage peak), and their CPU seconds;
- `tree_rss_kib(pid)`: the summed resident memory of a process and all its descendants, read from /proc
  (Linux); bench.harness.peers samples it for a child every 0.2 s;
- `rss_mb()`: this process's resident memory now.
"""

from __future__ import annotations

import os
import threading


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_kib(root: int) -> int:
    """VmRSS of `root` and every descendant, summed (KiB); 0 for a process that is gone."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total


class PeakRss:
    """Samples the RSS of this process and its children (except `exclude`) every `interval` s; peak since reset."""

    def __init__(self, exclude: set[int] | None = None, interval: float = 0.1) -> None:
        import psutil

        self.me, self.exclude, self.interval = psutil.Process(), exclude or set(), interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)

    def tree_rss(self) -> int:
        total = self.me.memory_info().rss
        for child in self.me.children(recursive=True):
            if child.pid in self.exclude:
                continue
            try:
                total += child.memory_info().rss
            except Exception:  # noqa: BLE001 - a child that exited between listing and reading
                pass
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of this process and its (waited-for) children so far."""
        t = self.me.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.tree_rss())

    def start(self) -> PeakRss:
        self._thread.start()
        return self

    def reset(self) -> int:
        """Start a new peak from the RSS now, which it returns."""
        self.peak = self.tree_rss()
        return self.peak

    def read(self) -> int:
        self.peak = max(self.peak, self.tree_rss())
        return self.peak

    def stop(self) -> None:
        self._stop.set()
