"""Files outside Spark tables: one way to join, test, read, write, list and delete paths, local or s3://.

Spark reads and writes the stage tables itself (fi_spark.tables); everything else fi-spark writes by
hand -- index artifacts, the LLM journal, export shards, the report -- goes through this module, so
"is this remote" and "how do I open it" have one answer.

Paths are plain strings in the form the user gave them: a local path (``~`` expanded), ``file://``
URIs (local too), or a remote URI (``s3://``; ``s3a://`` is read as ``s3://``; any other scheme pyarrow
knows, e.g. ``gs://``, ``hdfs://``). ``is_remote`` is true for every URI with a scheme other than
``file``, so ``dbfs:/...`` counts as remote as well: Spark can read it, this module cannot, and says so.

Why ``pyarrow.fs`` (not fsspec/s3fs): pyarrow is already a runtime dependency and already writes the
journal and the export shards, so one filesystem layer needs no new package; its S3 client is the AWS
C++ SDK, which takes credentials from the standard AWS chain (environment, ``~/.aws`` profiles, web
identity, instance / container roles) and ``AWS_ENDPOINT_URL`` for S3-compatible stores (MinIO, moto).
s3fs would add aiobotocore, which pins botocore to a narrow range and so fights the boto3 pin that
mlflow's S3 artifact store needs. Credentials are never read, passed or logged here: the SDK finds them.

Retries: S3 answers load with 503 SlowDown (per prefix, in bursts) and now and then a 500 InternalError.
``from_uri`` leaves Arrow's default strategy, which retries every 200 ms for 6 s and then gives up, no
backoff; S3 filesystems here use the SDK's standard strategy instead (exponential backoff with jitter, a
retry quota), with ``AWS_MAX_ATTEMPTS`` attempts (the variable the AWS SDKs and CLI read), 10 when unset.
One hole the SDK leaves: it writes an error response's body into the buffer of the read, and for an
object smaller than S3's XML error document (a few hundred bytes: a LATEST pointer, a manifest) the
throttled GET then fails as a non-retryable ``INTERNAL_FAILURE ... Failed to flush response stream``.
Reads here (``read_bytes``, ``open_input``, downloads by ``copy_file``) retry that error themselves,
with the same attempts and backoff (measured against a fault-injecting proxy, tests/s3_faults.py).

Writes are whole-object: a local file is written under a temporary name and renamed into place, an
object store PUT is atomic per object, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pyarrow is imported on first I/O: the path functions are plain string work
    import pyarrow as pa
    import pyarrow.fs as pafs

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/")  # two or more letters, so "C:/x" is not a scheme
_ALIASES = {"s3a": "s3", "s3n": "s3"}  # Hadoop's names for the same store
COPY_CHUNK = 8 << 20  # bytes per read when spooling a remote file
T = TypeVar("T")


def scheme(path: str) -> str:
    """The URI scheme of `path` (`s3`, `file`, `dbfs` ...), or '' for a plain local path."""
    found = _SCHEME.match(path)
    return found.group(1).lower() if found else ""


def is_remote(path: str) -> bool:
    """True for a URI naming anything but the local filesystem (`s3://`, `s3a://`, `gs://`, `dbfs:/` ...)."""
    return scheme(path) not in ("", "file")


def join(root: str, *parts: str) -> str:
    """`root/part/...` with single slashes, for local paths and URIs alike; a local `~` is expanded."""
    base = root if scheme(root) else os.path.expanduser(root)
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p.strip("/"))])


def local_path(path: str) -> str:
    """The absolute local path for a plain path or a file:// URI; an error for a remote one."""
    if is_remote(path):
        raise ValueError(f"{path}: a remote URI, not a local path")
    if scheme(path) == "file":
        path = re.sub(r"^file:(//[^/]*)?", "", path, flags=re.IGNORECASE)
    return os.path.abspath(os.path.expanduser(path))


def display(path: str) -> str:
    """How to show a path to a person: remote URIs as given, local paths absolute."""
    return path if is_remote(path) else local_path(path)


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem holding `path` and the path as that filesystem spells it (for pyarrow I/O)."""
    import pyarrow.fs as pafs

    if not is_remote(path):
        return pafs.LocalFileSystem(), local_path(path)
    name = scheme(path)
    rest = path.split(":", 1)[1].lstrip("/")
    bucket = rest.split("/", 1)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    fs = _remote_filesystem(_ALIASES.get(name, name), bucket, endpoint, os.getpid())
    return fs, rest.rstrip("/")


@lru_cache(maxsize=64)
def _remote_filesystem(name: str, bucket: str, endpoint: str | None, pid: int) -> pafs.FileSystem:
    """One filesystem per store, bucket and process (SDK clients do not survive a fork).

    `from_uri` asks S3 for the bucket's region once; the endpoint is part of the key because it names
    the store (a test's moto server, a MinIO) as much as the bucket does.
    """
    import pyarrow.fs as pafs

    try:
        fs, _ = pafs.FileSystem.from_uri(f"{name}://{bucket}")
    except (ValueError, NotImplementedError) as exc:  # pyarrow's "unrecognized filesystem type"
        raise ValueError(
            f"{name}://{bucket}: fi-spark cannot open {name}:// files itself ({exc}); Spark tables may live "
            "there, but index, journal, export and report locations must be local paths or s3:// URIs"
        ) from exc
    if isinstance(fs, pafs.S3FileSystem):  # the same store, with retries for throttling (module docstring)
        attempts = pafs.AwsStandardS3RetryStrategy(max_attempts=_max_attempts())
        fs = pafs.S3FileSystem(region=fs.region, endpoint_override=endpoint, retry_strategy=attempts)
    return fs


def exists(path: str) -> bool:
    """Whether a file or a folder (a non-empty prefix, on object stores) is at `path`."""
    import pyarrow.fs as pafs

    fs, where = filesystem(path)
    return bool(fs.get_file_info(where).type != pafs.FileType.NotFound)


def _max_attempts() -> int:
    return int(os.environ.get("AWS_MAX_ATTEMPTS") or 10)


def _retry_reads(read: Callable[[], T]) -> T:
    """``read()``, tried again (backoff with full jitter) while the SDK reports a throttled small GET as an
    unretryable flush failure (module docstring); any other error is raised at once."""
    for attempt in range(1, _max_attempts() + 1):
        try:
            return read()
        except OSError as exc:
            if "Failed to flush response stream" not in str(exc) or attempt == _max_attempts():
                raise
            time.sleep(random.uniform(0, min(20.0, 0.05 * 2**attempt)))
    raise AssertionError("unreachable")


def read_bytes(path: str) -> bytes:
    """The bytes of a file as stored (``compression=None``: pyarrow would un-gzip a `.gz` name on its own)."""
    fs, where = filesystem(path)

    def read() -> bytes:
        with fs.open_input_stream(where, compression=None) as src:
            return bytes(src.read())

    return _retry_reads(read) if is_remote(path) else read()


def open_input(path: str) -> IO[bytes]:
    """A seekable binary file with the bytes at `path` (use it in ``with``); a remote file is first copied,
    in one streamed GET, to a temporary local file that vanishes on close (readers like the WARC one seek)."""
    if not is_remote(path):
        return open(local_path(path), "rb")
    fs, where = filesystem(path)

    def spool() -> IO[bytes]:
        copy = tempfile.TemporaryFile()
        try:
            with fs.open_input_stream(where, compression=None) as src:
                while chunk := src.read(COPY_CHUNK):
                    copy.write(chunk)
        except BaseException:
            copy.close()
            raise
        copy.seek(0)
        return copy

    return _retry_reads(spool)


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file atomically (temp name + rename locally, one PUT remotely); parents are created."""
    import pyarrow.fs as pafs

    fs, where = filesystem(path)
    if isinstance(fs, pafs.LocalFileSystem):
        folder, name = os.path.split(where)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as dst:
            dst.write(data)
        os.replace(tmp, where)
        return
    with fs.open_output_stream(where, compression=None) as dst:
        dst.write(data)


def list_files(root: str) -> list[str]:
    """Every file under `root` (recursively), sorted, spelled like `root`: `s3://b/x/...` or a local path.
    A `root` that is a file lists itself."""
    import pyarrow.fs as pafs

    fs, where = filesystem(root)
    kind = fs.get_file_info(where).type
    if kind == pafs.FileType.NotFound:
        return []
    if kind == pafs.FileType.File:
        return [root if is_remote(root) else where]
    base = root.rstrip("/") if is_remote(root) else where
    found = fs.get_file_info(pafs.FileSelector(where, recursive=True))
    return sorted(base + item.path[len(where) :] for item in found if item.type == pafs.FileType.File)


def delete(path: str) -> None:
    """Remove a file or a whole folder; nothing there is fine."""
    import pyarrow.fs as pafs

    fs, where = filesystem(path)
    kind = fs.get_file_info(where).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(where)
    elif kind == pafs.FileType.File:
        fs.delete_file(where)


def copy_file(source: str, dest: str) -> None:
    """Copy one file between any two locations (local -> s3 uploads, s3 -> local downloads)."""
    import pyarrow.fs as pafs

    src_fs, src = filesystem(source)
    dst_fs, dst = filesystem(dest)
    if isinstance(dst_fs, pafs.LocalFileSystem):
        os.makedirs(os.path.dirname(dst), exist_ok=True)

    def copy() -> None:
        pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs)

    _retry_reads(copy) if is_remote(source) else copy()


# --------------------------------------------------------------------------- stage tables without Spark
def table_path(root: str, name: str) -> str:
    """Where a run's stage table lives: <output>/tables/<name> (fi_spark.tables.TableStore writes it there)."""
    return join(root, "tables", name)


def read_table_arrow(root: str, name: str) -> pa.Table | None:
    """A finished run's stage table as a pyarrow Table (Delta through delta-rs, else Parquet), None when absent.

    For readers that must not start Spark (`fi-spark plan`'s forecast); Spark code reads through TableStore."""
    import pyarrow.dataset as ds

    path = local_path(table_path(root, name))
    if not os.path.isdir(path):
        return None
    if os.path.isdir(os.path.join(path, "_delta_log")):
        from deltalake import DeltaTable

        return DeltaTable(path).to_pyarrow_table()
    return ds.dataset(path, format="parquet").to_table()


def delta_history(path: str) -> list[dict[str, Any]]:
    """The commits of a Delta table, newest first, from delta-rs (`DESCRIBE HISTORY` is not on every engine)."""
    from deltalake import DeltaTable

    return list(DeltaTable(path).history())
