"""A stage that runs for minutes says so: one line every `interval_s` while it runs, from a driver thread.

Why: a stage is mostly one or a few Spark actions, and nothing is logged between a stage's start and end (a
genericize run printed nothing for 5 min 20 s). The LLM send step logs requests done, rates and an ETA
(fi_spark.llm.progress); every stage gets this heartbeat besides, with the running Spark jobs' task counts
where the engine exposes them (a classic engine's sparkContext status tracker; Spark Connect and Sail have
none, so the line there gives the elapsed time only).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from fi_spark.llm.progress import format_duration


def spark_tasks(spark: Any) -> str:
    """`tasks 34/200 done in 2 active stages` from a classic sparkContext; empty where there is none."""
    try:
        tracker = spark.sparkContext.statusTracker()
        stages = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
    except Exception:  # Spark Connect: no sparkContext (the caller passes only classic sessions; belt and braces)
        return ""
    stages = [s for s in stages if s is not None]
    if not stages:
        return ""
    done = sum(s.numCompletedTasks for s in stages)
    total = sum(s.numTasks for s in stages)
    return f", tasks {done}/{total} done in {len(stages)} active Spark stage{'s' if len(stages) > 1 else ''}"


class Heartbeat:
    """`with Heartbeat("match", 60, log, details):` logs `stage match: running, 2m00s<details()>` every 60 s."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        log: logging.Logger,
        details: Callable[[], str] = lambda: "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.interval_s, self.log, self.details, self.clock = name, interval_s, log, details, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = clock()

    def line(self) -> str:
        return f"stage {self.name}: running, {format_duration(self.clock() - self._started)}{self.details()}"

    def __enter__(self) -> Heartbeat:
        self._started = self.clock()
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._loop, name=f"fi-spark-heartbeat-{self.name}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.log.info("%s", self.line())
