"""A byte-range line reader for text inputs, for engines whose text reader rejects bad bytes.

Sail's text reader (Arrow's CSV/line parser) fails the *whole read* on one invalid UTF-8 byte; the
JVM's does not. So on the embedded engine, JSONL files are cut into byte ranges on the driver (file
sizes only, never data) and each range is read by a Spark task in Python, Hadoop-style: a range
skips its first partial line (the previous range owns it) and reads past its end to finish its last
line. Lines are decoded as UTF-8 with replacement characters, so a bad byte becomes a
``invalid_encoding`` reject of that one record instead of a crashed job. Gzipped files are not
splittable and are read whole by one task.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

SPLIT_BYTES = 32 * 1024 * 1024
BATCH_LINES = 2000


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


def iter_split_lines(path: str, start: int, end: int) -> Iterator[str]:
    """Lines owned by the byte range [start, end) of ``path`` (see module docstring for ownership)."""
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            for raw in fh:
                yield _decode(raw)
        return
    with open(path, "rb") as fh:
        if start > 0:
            fh.seek(start - 1)
            fh.readline()  # the line that straddles `start` belongs to the previous range
        while fh.tell() < end:
            raw = fh.readline()
            if not raw:
                break
            yield _decode(raw)


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
                for line in iter_split_lines(path, int(start), int(end)):
                    buffer.append(line)
                    if len(buffer) >= BATCH_LINES:
                        yield pd.DataFrame({"value": buffer, "input_file": path})
                        buffer = []
                if buffer:
                    yield pd.DataFrame({"value": buffer, "input_file": path})

    return plan.mapInPandas(read_batches, "value string, input_file string")
