"""Reading raw document files (JSONL, optionally gzipped, and Parquet) into one JSON-line frame.

Every input becomes rows of ``(value: JSON string, input_file: string)`` so that one parser
(fi_spark.ingest.records) applies the same rules and reject reasons to every format. Reading lines as
text (rather than with Spark's JSON reader) keeps malformed lines as rows we can reject with a reason,
identically on every engine. A Parquet file whose footer cannot be read (random bytes, a truncated
upload) would fail the whole read on every engine; such files are found on the driver (footers only,
never data) and each becomes one ``unreadable_input`` reject while the other files are read.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fi_spark import storage
from fi_spark.engine import Capabilities
from fi_spark.errors import InputError
from fi_spark.ingest.jsonline import reader_reject
from fi_spark.ingest.splits import read_lines

MAX_FILES_TO_LABEL = 256  # per-file reads (to record input_file) up to this many files, then one read


def list_input_files(path: str) -> list[str]:
    """The files behind a file, folder or glob, local or remote (hidden and Spark marker files skipped).

    Remote (s3://) paths are listed through fi_spark.storage: a file, everything under a prefix, or a glob
    matched against the listing of the prefix before its first wildcard (`*` also crosses `/` there)."""
    if storage.is_remote(path):
        return _remote_input_files(path)
    if any(ch in path for ch in "*?["):
        candidates = glob.glob(path)
    elif os.path.isdir(path):
        candidates = [os.path.join(root, name) for root, _, names in os.walk(path) for name in names]
    elif os.path.isfile(path):
        candidates = [path]
    else:
        raise InputError(f"input path not found: {path}")
    files = sorted(p for p in candidates if os.path.isfile(p) and not os.path.basename(p).startswith(("_", ".")))
    if not files:
        raise InputError(f"no input files under {path}")
    unreadable = [p for p in files if not os.access(p, os.R_OK)]
    if unreadable:
        raise InputError(f"cannot read {len(unreadable)} input file(s), e.g. {unreadable[0]} (permission denied)")
    return files


def _remote_input_files(path: str) -> list[str]:
    wildcard = re.search(r"[*?\[]", path)
    root = path[: path.rfind("/", 0, wildcard.start())] if wildcard else path
    found = storage.list_files(root)
    if wildcard:
        found = [f for f in found if fnmatch.fnmatchcase(f, path)]
    files = [f for f in found if not f.rsplit("/", 1)[-1].startswith(("_", "."))]
    if not files:
        raise InputError(f"no input files under {path}" if found else f"input path not found: {path}")
    return files


def detect_format(path: str, files: list[str] | None) -> str:
    names = files or [path]
    if all(n.endswith(".parquet") or ".parquet" in os.path.basename(n) for n in names):
        return "parquet"
    return "jsonl"


def read_documents(spark: SparkSession, path: str, caps: Capabilities) -> DataFrame:
    """Rows of (value: JSON text as string or UTF-8 bytes, input_file) for every record under ``path``."""
    files = None if storage.is_remote(path) else list_input_files(path)
    fmt = detect_format(path, files)
    if fmt == "parquet" and files is not None:
        readable, damaged = split_damaged_parquet(files)
        if damaged:
            rejects = damaged_rows(spark, damaged)
            return rejects.unionByName(read_documents_from(spark, readable, caps)) if readable else rejects
    if fmt == "jsonl" and files is not None and read_in_python(files, caps):
        return read_lines(spark, files)
    if files is not None and len(files) <= MAX_FILES_TO_LABEL and not caps.spark_context:
        # Sail has no input_file_name(): read file by file and label each (few files, cheap unions).
        frames = [_read_one(spark, f, fmt).withColumn("input_file", F.lit(f)) for f in files]
        out = frames[0]
        for frame in frames[1:]:
            out = out.unionByName(frame)
        return out
    frame = _read_one(spark, path, fmt)
    label = F.input_file_name() if caps.spark_context else F.lit(path)
    return frame.withColumn("input_file", label)


def read_in_python(files: list[str], caps: Capabilities) -> bool:
    """Whether local text files are read by fi-spark's own Python readers rather than Spark's.

    Always on embedded Sail: its text and CSV readers fail a whole read on one bad byte or ragged row. On the
    JVM too when any file is gzipped: a truncated or corrupt `.gz` fails Spark's reader, and with it the job,
    where ours yields the lines before the damage and one `unreadable_input` reject. A gzip file is one task
    in either reader, so nothing is lost in parallelism.
    """
    return caps.udfs_in_driver_process or any(f.endswith(".gz") for f in files)


def split_damaged_parquet(files: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(readable files, [(file, why)] for files whose Parquet footer cannot be read)."""
    import pyarrow.parquet as pq

    readable, damaged = [], []
    for f in files:
        try:
            pq.read_metadata(f)
            readable.append(f)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError variants for every kind of damage
            damaged.append((f, f"Parquet footer unreadable: {type(exc).__name__}: {str(exc)[:200]}"))
    return readable, damaged


def damaged_rows(spark: SparkSession, damaged: list[tuple[str, str]]) -> DataFrame:
    """One reader-reject row per damaged file (prepare_corpus and ingest_queries count it as a record)."""
    rows = [(reader_reject("unreadable_input", why, os.path.basename(f)), f) for f, why in damaged]
    return spark.createDataFrame(rows, "value string, input_file string")


def read_documents_from(spark: SparkSession, files: list[str], caps: Capabilities) -> DataFrame:
    """``read_documents`` over an explicit list of Parquet files (labelled one by one when few)."""
    if len(files) <= MAX_FILES_TO_LABEL or not caps.spark_context:
        frames = [_read_one(spark, f, "parquet").withColumn("input_file", F.lit(f)) for f in files]
        out = frames[0]
        for frame in frames[1:]:
            out = out.unionByName(frame)
        return out
    return _read_one(spark, files, "parquet").withColumn("input_file", F.input_file_name())


def _read_one(spark: SparkSession, path: str | list[str], fmt: str) -> DataFrame:
    if fmt == "parquet":
        df = spark.read.parquet(*([path] if isinstance(path, str) else path))
        if "text" not in df.columns:
            raise InputError(f"{path}: Parquet input needs a `text` column; it has {df.columns}")
        # One JSON form for every format: the record parser then applies the same rules to both.
        return df.select(F.to_json(F.struct(*[F.col(c) for c in df.columns])).alias("value"))
    # As raw bytes: the JVM passes invalid UTF-8 through, and Arrow would fail converting it to a Python str;
    # the record parser decodes with replacement characters and rejects the record (invalid_encoding).
    return spark.read.text(path).select(F.col("value").cast("binary").alias("value"))
