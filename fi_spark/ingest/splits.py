"""A byte-range line reader for text inputs, for engines whose text reader rejects bad bytes.

Sail's text reader (Arrow's CSV/line parser) fails the *whole read* on one invalid UTF-8 byte; the
JVM's does not. So on the embedded engine, JSONL files are cut into byte ranges on the driver (file
sizes only, never data) and each range is read by a Spark task in Python, Hadoop-style: a range
skips its first partial line (the previous range owns it) and reads past its end to finish its last
line. Lines are decoded as UTF-8 with replacement characters, so a bad byte becomes a
``invalid_encoding`` reject of that one record instead of a crashed job. Gzipped files are not
splittable and are read whole by one task.

Hostile input stays bounded: a line longer than ``MAX_RECORD_CHARS`` bytes is never held in memory
(its first bytes are kept, the rest is skipped) and becomes one ``record_too_large`` reject; a truncated or
corrupt gzip file yields the lines before the damage and then one ``unreadable_input`` reject for the
rest; output batches are cut by bytes as well as lines, so a batch never nears Arrow's 2 GB string limit.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from fi_spark.ingest.jsonline import EXCERPT_CHARS, MAX_RECORD_CHARS, reader_reject

SPLIT_BYTES = 32 * 1024 * 1024
BATCH_LINES = 2000
BATCH_BYTES = 64 * 1024 * 1024
_SKIP_CHUNK = 1024 * 1024


class _Lines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def plan_splits(files: list[str], split_bytes: int = SPLIT_BYTES) -> list[tuple[str, int, int]]:
    """(path, start, end) byte ranges covering every file; a gzipped file is one range."""
    splits = []
    for path in files:
        size = os.path.getsize(path)
        if path.endswith(".gz") or size <= split_bytes:
            splits.append((path, 0, size))
            continue
        splits.extend((path, start, min(start + split_bytes, size)) for start in range(0, size, split_bytes))
    return splits


def iter_split_lines(path: str, start: int, end: int, max_line: int = MAX_RECORD_CHARS) -> Iterator[str]:
    """Lines owned by the byte range [start, end) of ``path`` (see module docstring for ownership)."""
    if path.endswith(".gz"):
        lines = 0
        try:
            with gzip.open(path, "rb") as fh:
                while (line := _read_line(fh, max_line)) is not None:
                    lines += 1
                    yield line
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            detail = f"gzip stream unreadable after {lines} line(s): {type(exc).__name__}: {exc}"
            yield reader_reject("unreadable_input", detail, os.path.basename(path))
        return
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            while (chunk := fh.readline(_SKIP_CHUNK)) and not chunk.endswith(b"\n"):
                pass  # the line that straddles `start` belongs to the previous range
        while fh.tell() < end:
            line = _read_line(fh, max_line)
            if line is None:
                break
            yield line


def _read_line(fh: _Lines, max_line: int) -> str | None:
    """The next line decoded (None at end of file); an overlong line is skipped and becomes a reader reject."""
    raw = fh.readline(max_line + 1)
    if not raw:
        return None
    if len(raw) <= max_line or raw.endswith(b"\n"):
        return _decode(raw)
    total = len(raw)
    while chunk := fh.readline(_SKIP_CHUNK):  # the rest of the line, never held whole
        total += len(chunk)
        if chunk.endswith(b"\n"):
            break
    head = raw[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    return reader_reject("record_too_large", f"{total} bytes > {max_line} per line (not parsed)", head)


def _decode(raw: bytes) -> str:
    return raw.rstrip(b"\r\n").decode("utf-8", errors="replace")


def read_lines(spark: SparkSession, files: list[str], split_bytes: int = SPLIT_BYTES) -> DataFrame:
    """Rows of (value, input_file): one per line of ``files``, read by as many tasks as there are ranges."""
    splits = plan_splits(files, split_bytes)
    plan = spark.createDataFrame(splits, "path string, start long, end long").repartition(max(1, len(splits)))

    def read_batches(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        for batch in batches:
            for path, start, end in zip(batch["path"], batch["start"], batch["end"]):
                buffer: list[str] = []
                size = 0
                for line in iter_split_lines(path, int(start), int(end)):
                    buffer.append(line)
                    size += len(line)
                    if len(buffer) >= BATCH_LINES or size >= BATCH_BYTES:
                        yield pd.DataFrame({"value": buffer, "input_file": path})
                        buffer, size = [], 0
                if buffer:
                    yield pd.DataFrame({"value": buffer, "input_file": path})

    return plan.mapInPandas(read_batches, "value string, input_file string")
