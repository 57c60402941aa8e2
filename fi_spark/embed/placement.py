"""Where the encoder runs: the process's one encoder thread, the task's device and batch size, a GPU profile.

One encoder thread per process. Spark hands each task's Python function a thread of its own (every Sail task
is a new thread of the server, our own process). glibc gives each thread that allocates its own malloc arena,
and the encoder's activations (tens of MB per batch) freed in one arena are not reused by the next task's
thread, so the process grew with every partition it encoded: measured on the match stage at 1k documents,
1.2 GB at the start to 3.8 GB, one step per task (bench/match_memory.py). `on_encoder_thread` runs the
encoding on a single long-lived thread per process instead, so one arena serves every task and the memory
stays at one batch's worth. Encoding was already serialized per process (fi_spark.embed.encoder's lock), so
this costs no parallelism.

Device and batch size per task. On a classic Spark cluster with GPUs, match runs its encoder tasks under a
task resource profile asking for `match.gpu_amount` GPUs (`gpu_profile`; Spark >= 3.4 schedules such a
profile without dynamic allocation on YARN, Kubernetes and standalone clusters); inside the task,
`task_placement` reads the address Spark assigned (TaskContext.resources()["gpu"]) and encodes on
`cuda:<address>` with `match.gpu_batch_size`; a task without a GPU uses `embed.device` and `embed.batch_size`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from fi_spark.config.embed import EmbedConfig

T = TypeVar("T")
ENCODER_THREAD = "fi-encoder"  # the name prefix of the process's one encoder thread
GPU = "gpu"  # Spark's resource name for GPUs (spark.executor.resource.gpu.amount)

_THREAD: tuple[int, ThreadPoolExecutor] | None = None  # (pid, executor): a forked worker makes its own
_THREAD_LOCK = threading.Lock()


def on_encoder_thread(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) on this process's single encoder thread (created on first use), its result or its exception."""
    global _THREAD
    if threading.current_thread().name.startswith(ENCODER_THREAD):  # a nested call: already there
        return fn(*args)
    with _THREAD_LOCK:
        if _THREAD is None or _THREAD[0] != os.getpid():
            _THREAD = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix=ENCODER_THREAD))
        pool = _THREAD[1]
    return pool.submit(fn, *args).result()


@dataclass(frozen=True)
class Placement:
    """The device one task encodes on and its batch size."""

    device: str
    batch_size: int


def task_placement(resources: Mapping[str, Any], embed: EmbedConfig, gpu_batch_size: int) -> Placement:
    """`resources`: TaskContext.resources() ({name: ResourceInformation with .addresses}); the first GPU the task
    was given -> cuda:<address> with gpu_batch_size, none -> embed.device with embed.batch_size."""
    gpu = resources.get(GPU)
    addresses = list(getattr(gpu, "addresses", None) or [])
    if addresses:
        return Placement(f"cuda:{addresses[0]}", gpu_batch_size)
    return Placement(embed.device, embed.batch_size)


def current_task_resources() -> Mapping[str, Any]:
    """The running task's resources; {} outside a classic Spark task (Sail and Connect servers give none)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return ctx.resources() if ctx is not None else {}


def placed_embed(embed: EmbedConfig, gpu_batch_size: int) -> EmbedConfig:
    """`embed` with the device and batch size of the running task (the encoder cache is keyed by device)."""
    placement = task_placement(current_task_resources(), embed, gpu_batch_size)
    if placement == Placement(embed.device, embed.batch_size):
        return embed
    return embed.model_copy(update={"device": placement.device, "batch_size": placement.batch_size})


def gpu_profile(amount: float, cpus: int | None = None) -> Any:
    """A task resource profile: `amount` GPUs per task (0.5: two tasks share one), and `cpus` cores when given.

    Task requests only, no executor requests: the executors already have their GPUs from the cluster's
    spark.executor.resource.gpu.amount, and a task-only profile needs no dynamic allocation (Spark >= 3.4).
    """
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    requests = TaskResourceRequests().resource(GPU, amount)
    if cpus is not None:
        requests = requests.cpus(cpus)
    return ResourceProfileBuilder().require(requests).build
