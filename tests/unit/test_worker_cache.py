"""Per-worker resources (fi_spark.worker_cache): set up once per process, torn down by kind or all together."""

from __future__ import annotations

import threading
import time

from fi_spark import worker_cache


def test_setup_runs_once_and_release_tears_down_by_kind() -> None:
    built: list[str] = []
    freed: list[str] = []

    def setup(name: str):  # type: ignore[no-untyped-def]
        def build() -> str:
            built.append(name)
            return name

        return build

    a = worker_cache.acquire(("t-encoder", "a"), setup("a"), freed.append)
    assert worker_cache.acquire(("t-encoder", "a"), setup("a-again"), freed.append) is a
    worker_cache.acquire(("t-index", "v1"), setup("v1"), freed.append)
    assert built == ["a", "v1"]
    assert worker_cache.release("t-index") == 1
    assert freed == ["v1"] and worker_cache.held("t-encoder") == [("t-encoder", "a")]
    assert worker_cache.release("t-encoder") == 1 and freed == ["v1", "a"]
    assert worker_cache.held("t-encoder") == []


def test_a_failing_teardown_does_not_stop_the_others() -> None:
    freed: list[int] = []

    def boom(_: int) -> None:
        raise RuntimeError("cannot free")

    worker_cache.acquire(("t-mixed", 1), lambda: 1, boom)
    worker_cache.acquire(("t-mixed", 2), lambda: 2, freed.append)
    assert worker_cache.release("t-mixed") == 2
    assert freed == [2]


def test_threads_of_one_worker_build_a_resource_once() -> None:
    calls: list[int] = []

    def slow() -> object:
        calls.append(1)
        time.sleep(0.05)
        return object()

    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(worker_cache.acquire(("t-slow",), slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(g) for g in got}) == 1
    worker_cache.release("t-slow")
