"""Per-worker resources -- encoders, loaded indexes, tokenizers -- set up once per Python process, torn down together.

Spark runs a stage's Python code in long-lived worker processes (one per executor core on classic Spark, one
shared process on Sail); loading a model or a FAISS index per batch or per task would cost more than the work.
So each such resource is set up on first use in a process and reused by every later batch and task there:
NeMo Curator's stage `setup()` / `teardown()`, per process. A resource is a key, a `setup` that builds it and
an optional `teardown` that frees it (an ONNX session, a memory-mapped index); `release` tears down every
resource under a key prefix (tests; a long-lived process switching index versions) and all of them run at exit.
Setup runs under one lock per process, so threads of one worker (Arrow batches, asyncio pools) build a
resource once.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Key = tuple[Hashable, ...]  # (kind, ...): ("encoder", model, revision, ...), ("index", version), ...

_RESOURCES: dict[Key, Any] = {}
_TEARDOWNS: dict[Key, Callable[[Any], None]] = {}
_LOCK = threading.RLock()


def acquire(key: Key, setup: Callable[[], T], teardown: Callable[[T], None] | None = None) -> T:
    """The resource under `key` in this process: `setup()` on first use, the same object afterwards."""
    try:
        return _RESOURCES[key]  # type: ignore[no-any-return]  # the hot path takes no lock
    except KeyError:
        pass
    with _LOCK:
        if key not in _RESOURCES:
            _RESOURCES[key] = setup()
            if teardown is not None:
                _TEARDOWNS[key] = teardown
        return _RESOURCES[key]  # type: ignore[no-any-return]


def release(kind: Hashable | None = None) -> int:
    """Tear down and forget the resources whose key starts with `kind` (all when None); returns how many."""
    with _LOCK:
        keys = [k for k in _RESOURCES if kind is None or k[0] == kind]
        for key in keys:
            value = _RESOURCES.pop(key)
            teardown = _TEARDOWNS.pop(key, None)
            if teardown is not None:
                try:
                    teardown(value)
                except Exception as exc:  # noqa: BLE001 - freeing one resource must not stop freeing the rest
                    log.debug("teardown of %s failed: %s", key, exc)
        return len(keys)


def held(kind: Hashable | None = None) -> list[Key]:
    """The keys of the resources set up in this process (tests, diagnostics)."""
    return [k for k in list(_RESOURCES) if kind is None or k[0] == kind]


atexit.register(release)
