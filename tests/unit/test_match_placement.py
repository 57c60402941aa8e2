"""Where match's encoder runs: one encoder thread per process, the task's device and batch size, the GPU profile."""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from pyspark.resource import ResourceInformation

from fi_spark.config import EmbedConfig, IndexConfig, MatchConfig
from fi_spark.embed import placement
from fi_spark.embed.placement import Placement, gpu_profile, on_encoder_thread, placed_embed, task_placement
from fi_spark.index.distribute import IndexHandle
from fi_spark.match.match import find_candidates, match_profile
from fi_spark.section import ConfigError


def test_a_task_given_a_gpu_encodes_on_it_with_the_gpu_batch_size() -> None:
    """The first GPU address Spark assigned the task -> cuda:<address> and match.gpu_batch_size."""
    resources = {"gpu": ResourceInformation("gpu", ["3", "5"])}
    assert task_placement(resources, EmbedConfig(batch_size=64), 512) == Placement("cuda:3", 512)


@pytest.mark.parametrize("resources", [{}, {"gpu": ResourceInformation("gpu", [])}, {"fpga": SimpleNamespace()}])
def test_a_task_without_a_gpu_keeps_embed_device_and_batch_size(resources: dict[str, Any]) -> None:
    """No GPU address (no resources, an empty list, another resource) -> embed.device and embed.batch_size."""
    assert task_placement(resources, EmbedConfig(device="cpu", batch_size=48), 512) == Placement("cpu", 48)


class FakeTaskContext:
    def __init__(self, resources: dict[str, ResourceInformation]) -> None:
        self._resources = resources

    def resources(self) -> dict[str, ResourceInformation]:
        return self._resources


def test_placed_embed_reads_the_running_tasks_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a task (TaskContext.get()), the embed config the encoder is loaded with carries the task's GPU."""
    import pyspark

    embed = EmbedConfig(batch_size=32)
    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: FakeTaskContext({})))
    assert placed_embed(embed, 256) is embed
    gpu = {"gpu": ResourceInformation("gpu", ["1"])}
    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: FakeTaskContext(gpu)))
    placed = placed_embed(embed, 256)
    assert (placed.device, placed.batch_size, placed.model) == ("cuda:1", 256, embed.model)
    monkeypatch.setattr(pyspark.TaskContext, "get", staticmethod(lambda: None))  # Sail: no task context
    assert placed_embed(embed, 256) is embed


def test_every_caller_thread_encodes_on_the_same_encoder_thread() -> None:
    """Tasks on different threads (as Sail runs them) all run the encoder on one thread; errors come back."""
    seen: list[int] = []
    callers = [threading.Thread(target=lambda: seen.append(on_encoder_thread(threading.get_ident))) for _ in range(4)]
    for t in callers:
        t.start()
        t.join()
    assert len(seen) == 4 and len(set(seen)) == 1 and seen[0] not in {t.ident for t in callers}
    with pytest.raises(ZeroDivisionError):
        on_encoder_thread(lambda: 1 / 0)


def test_gpu_profile_asks_each_task_for_its_gpu_amount() -> None:
    """A task-only profile (no executor requests: those come from the cluster) with the GPU amount and cpus."""
    profile = gpu_profile(0.5, cpus=2)
    assert profile.taskResources["gpu"].amount == 0.5
    assert profile.taskResources["cpus"].amount == 2
    assert profile.executorResources == {}
    assert set(gpu_profile(1.0).taskResources) == {"gpu"}


class RecordingFrame:
    """Stands in for the chunks DataFrame: records the mapInPandas call find_candidates makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def repartition(self, *_: Any) -> RecordingFrame:
        return self

    def sortWithinPartitions(self, *_: Any) -> RecordingFrame:  # noqa: N802 - pyspark's name
        return self

    def mapInPandas(self, *args: Any, **kwargs: Any) -> RecordingFrame:  # noqa: N802 - pyspark's name
        self.calls.append((args, kwargs))
        return self


def test_find_candidates_passes_the_profile_only_when_there_is_one() -> None:
    """With a profile, mapInPandas gets profile=; without one the call is the plain one Sail accepts."""
    handle = IndexHandle("v1", "path", "/nowhere", IndexConfig())
    frame, profile = RecordingFrame(), gpu_profile(1.0)
    find_candidates(frame, handle, EmbedConfig(), MatchConfig(), 4, profile)  # type: ignore[arg-type]
    find_candidates(frame, handle, EmbedConfig(), MatchConfig(), 4)  # type: ignore[arg-type]
    (_, with_profile), (_, without) = frame.calls
    assert with_profile == {"profile": profile} and without == {}


def fake_ctx(classic: bool, executor_gpus: str | None) -> Any:
    conf = {} if executor_gpus is None else {"spark.executor.resource.gpu.amount": executor_gpus}
    caps = SimpleNamespace(spark_context=classic, mode="local" if classic else "embedded")
    return SimpleNamespace(engine=SimpleNamespace(caps=caps), spark=SimpleNamespace(conf=conf),
                           log=logging.getLogger("test"))  # fmt: skip


def test_match_profile_follows_the_clusters_gpus() -> None:
    """auto: a profile on classic Spark whose executors have GPUs, none elsewhere; false: never."""
    profile = match_profile(fake_ctx(True, "1"), MatchConfig(gpu="auto", gpu_amount=0.25))
    assert profile is not None and profile.taskResources["gpu"].amount == 0.25
    assert match_profile(fake_ctx(True, None), MatchConfig(gpu="auto")) is None
    assert match_profile(fake_ctx(True, "0"), MatchConfig(gpu="auto")) is None
    assert match_profile(fake_ctx(True, "1"), MatchConfig(gpu=False)) is None
    assert match_profile(fake_ctx(False, "1"), MatchConfig(gpu="auto")) is None


def test_match_gpu_true_without_executor_gpus_fails_and_on_sail_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """gpu=true on classic Spark without executor GPUs would never schedule: an error naming the setting;
    on Sail / Connect (no stage-level scheduling) one log line, and no profile."""
    with pytest.raises(ConfigError, match="spark.executor.resource.gpu.amount"):
        match_profile(fake_ctx(True, None), MatchConfig(gpu=True))
    with caplog.at_level(logging.INFO, logger="fi_spark.match.match"):
        assert match_profile(fake_ctx(False, None), MatchConfig(gpu=True)) is None
    assert [r.getMessage() for r in caplog.records if "no stage-level scheduling" in r.getMessage()]


def test_encoder_thread_is_remade_in_a_forked_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python worker forked from a daemon that already had an encoder thread makes its own (threads don't fork)."""
    first = on_encoder_thread(threading.get_ident)
    monkeypatch.setattr(placement.os, "getpid", lambda: -1)
    assert on_encoder_thread(threading.get_ident) != first


def test_a_pyspark_without_profile_argument_runs_without_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Spark 3.5 (EMR 7.x) has no mapInPandas(profile=): one log line and no profile, not a TypeError."""
    from pyspark.sql import DataFrame

    def old_map_in_pandas(self: Any, func: Any, schema: Any, barrier: bool = False) -> Any:
        raise AssertionError("not called")

    monkeypatch.setattr(DataFrame, "mapInPandas", old_map_in_pandas)
    with caplog.at_level(logging.INFO, logger="fi_spark.match.match"):
        assert match_profile(fake_ctx(True, "1"), MatchConfig(gpu="auto")) is None
    assert [r for r in caplog.records if "takes no resource profile" in r.getMessage()]


def test_encode_runs_on_the_encoder_thread_and_nested_calls_do_not_wait_on_themselves() -> None:
    """Every encode call (match, build_index, instantiate's relevance) runs on the process's one encoder thread;
    a call made from that thread (match wraps pooling, which encodes) runs in place instead of deadlocking."""
    import threading

    import numpy as np

    from fi_spark.embed.encoder import encode
    from fi_spark.embed.placement import ENCODER_THREAD, on_encoder_thread

    seen: list[str] = []

    class Model:
        def encode(self, texts, **_: object):  # type: ignore[no-untyped-def]
            seen.append(threading.current_thread().name)
            return np.ones((len(texts), 3), dtype=np.float32)

    assert encode(Model(), ["a", "b"], 8).shape == (2, 3)
    nested = on_encoder_thread(lambda: encode(Model(), ["c"], 8))
    assert nested.shape == (1, 3)
    assert len(seen) == 2 and all(name.startswith(ENCODER_THREAD) for name in seen)
    assert threading.current_thread().name not in seen
