"""CSV files -> JSON-line rows, read in Python, for engines whose CSV reader fails a whole read on one bad row.

Sail's CSV reader (Arrow's) stops the whole job at the first row whose number of fields differs from
the header ("incorrect number of fields"); the JVM's keeps going. So on the embedded engine query CSVs
are read here, one Spark task per file (a quoted field may span lines, so a CSV is not cut into byte
ranges), with Python's ``csv`` module and the dialect ingest_queries asks Spark for (header row, ``"``
quotes doubled inside quoted fields, fields over several lines). Rows become the JSON form every reader
produces, so fi_spark.ingest.jsonline's rules apply; and as on Spark, empty fields are nulls.

Bad input is a row, never a failed task: bytes are decoded as UTF-8 with replacement (rows with
undecodable bytes become ``invalid_encoding`` rejects), a leading BOM is dropped, a row with the wrong
number of fields or a field over ``MAX_RECORD_CHARS`` is a ``malformed_csv`` reject, and a truncated
gzip file ends with one ``unreadable_input`` reject. Blank lines are layout, not records.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from fi_spark.ingest.jsonline import MAX_RECORD_CHARS, reader_reject

BATCH_ROWS = 2000


def iter_csv_records(path: str) -> Iterator[str]:
    """One JSON object (header -> value) or reader reject per CSV row of ``path`` (.csv or .csv.gz)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS))  # process-wide; only ever raised
    rows = 0
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
            reader = csv.reader(text)
            header = _next_row(reader)
            if header is None:
                return
            if isinstance(header, csv.Error):
                yield reader_reject("malformed_csv", f"header: {header}", os.path.basename(path))
                return
            while (row := _next_row(reader)) is not None:
                rows += 1
                if isinstance(row, csv.Error):
                    yield reader_reject("malformed_csv", f"line {reader.line_num}: {row}", "")
                elif len(row) != len(header):
                    detail = f"line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                    yield reader_reject("malformed_csv", detail, ",".join(row))
                else:
                    yield json.dumps({k: v if v != "" else None for k, v in zip(header, row)}, ensure_ascii=False)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        detail = f"gzip stream unreadable after {rows} row(s): {type(exc).__name__}: {exc}"
        yield reader_reject("unreadable_input", detail, os.path.basename(path))


def _next_row(reader: Iterator[list[str]]) -> list[str] | csv.Error | None:
    """The next non-blank row, the csv.Error it raised (the reader goes on after one), or None at the end."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            return exc
        if any(field.strip() for field in row):
            return row


def read_csv_records(spark: SparkSession, files: list[str]) -> DataFrame:
    """Rows of (value: JSON record or reader reject, input_file), one task per CSV file."""

    def read_files(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        for batch in batches:
            for path in batch["input_file"]:
                buffer: list[str] = []
                for value in iter_csv_records(path):
                    buffer.append(value)
                    if len(buffer) >= BATCH_ROWS:
                        yield pd.DataFrame({"value": buffer, "input_file": path})
                        buffer = []
                if buffer:
                    yield pd.DataFrame({"value": buffer, "input_file": path})

    files_df = spark.createDataFrame([(f,) for f in files], "input_file string").repartition(max(1, len(files)))
    return files_df.mapInPandas(read_files, "value string, input_file string")  # type: ignore[arg-type]
