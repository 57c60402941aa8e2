"""Errors worded for the person running a job; the CLI prints them as one line and exits with code 2.

Kept free of pyspark so `fi_spark.cli` can catch them without importing Spark.
"""

from __future__ import annotations

import errno

# How a full disk reads by the time it reaches the driver: Python's OSError (the LLM journal, pyarrow), the Rust
# engine's `(os error 28)` (a Sail write), or Python's errno text inside a worker traceback that Spark Connect
# forwards as a PythonException whose str() can be empty (its text is in the gRPC details).
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_MARKERS = (
    "no space left on device",
    "disk quota exceeded",
    "os error 28)",
    "os error 122)",
    "[errno 28]",
    "[errno 122]",
)


class InputError(ValueError):
    """An input path that cannot be read, worded for the person running the job."""


class OutputFullError(RuntimeError):
    """The output folder's device is full (or over quota): the run stopped; freeing space and re-running resumes it."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from or while handling, says the disk is full."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        if isinstance(e, OutputFullError) or (isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS):
            return True
        texts = [str(e), *(str(getattr(e, a, "")) for a in ("_message", "_stacktrace", "details"))]
        if any(marker in text.lower() for text in texts for marker in DISK_FULL_MARKERS):
            return True
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return False


def output_full(what: str, output: str) -> OutputFullError:
    """The one-line error for a full output device while `what` (a stage) ran."""
    return OutputFullError(
        f"{what}: no space left on the device of the output folder {output}; free space there and run the same "
        "command again: it resumes where it stopped (LLM answers received and journaled so far are kept)"
    )


class LLMFailureError(RuntimeError):
    """The LLM endpoints failed a stage (unreachable, or too many requests failed for a transient reason).

    The CLI prints it as one line and exits with code 3. `result` is the stage's counts when the stage ran
    (the answered rows and stored rejects are written before this is raised), None when a probe failed first.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result
