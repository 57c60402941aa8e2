"""A full output disk, however it reaches the driver, becomes one line from the CLI (fi_spark.errors)."""

from __future__ import annotations

import errno
import os

import pytest

from fi_spark import cli
from fi_spark.errors import OutputFullError, is_disk_full, output_full


class GrpcLikeError(Exception):
    """Shaped like Spark Connect's PythonException: an empty str(), the worker traceback in `_message`."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self._message = message


def raised_from(inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException:
            raise RuntimeError("Python worker failed") from None  # context only, as Spark's wrappers do
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
        OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)),
        RuntimeError(
            "Failed to write file: Generic LocalFileSystem error: Unable to copy data to file: "
            "No space left on device (os error 28)"
        ),  # fmt: skip
        GrpcLikeError('Traceback (most recent call last):\n  File "journal.py"\nOSError: [Errno 28] No space left'),
        raised_from(OSError(errno.ENOSPC, "No space left on device")),
    ],
    ids=["oserror", "quota", "sail_rust", "worker_traceback", "chained"],
)
def test_disk_full_is_recognized(exc: BaseException) -> None:
    """Every shape a full disk was seen to take on this engine is recognized."""
    assert is_disk_full(exc)


@pytest.mark.parametrize(
    "exc", [OSError(errno.EACCES, "Permission denied"), ValueError("28 rows"), RuntimeError("error 28")]
)
def test_other_errors_are_not_disk_full(exc: BaseException) -> None:
    """Other failures keep their own traceback (they are not reworded as a full disk)."""
    assert not is_disk_full(exc)


def test_cli_prints_one_line_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A stage's OutputFullError and a raw disk-full error elsewhere both end as one `fi-spark: error:` line, rc 2."""
    for exc in (output_full("genericize", "/data/out"), OSError(errno.ENOSPC, "No space left on device")):

        def fail(args: object, config: object, exc: BaseException = exc) -> int:
            raise exc

        monkeypatch.setattr(cli, "_cmd_stage", fail)
        assert cli.main(["genericize", "--output", "/data/out", "--set", "tracking.enabled=false"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("fi-spark: error: genericize: no space left on the device"), err
        assert "/data/out" in err[0] and "run the same command again" in err[0]
    assert issubclass(OutputFullError, RuntimeError)
