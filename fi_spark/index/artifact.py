"""Versioned index artifacts: save, find, load (once per process), local folders or s3://.

An artifact is a folder `<root>/<version>/` holding
    index.faiss     the FAISS index (row i = template ids[i])
    ids.txt         template ids, one per line, in index order
    manifest.json   version, kind, factory, n, dim, embedding model, recall@k, build params
and `<root>/LATEST` names the newest version. The version is a content hash of the index bytes
of the inputs (template ids, vectors, build settings), so the same templates and settings give the
same version and a re-run builds and writes nothing; any change gives a new folder, and older
artifacts stay loadable.

Workers load an artifact through `load_artifact(uri)`, which caches it per process keyed by
version: a Spark worker process handles many tasks and batches but reads and deserializes the
index once. Remote artifacts are downloaded once per machine into `cache_dir/<version>/`
(written to a temp folder and renamed, so concurrent processes never read a half-written file);
local files are memory-mapped where the index type allows it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from fi_spark import storage, worker_cache
from fi_spark.section import ConfigError

INDEX_FILE, IDS_FILE, MANIFEST_FILE, LATEST_FILE = "index.faiss", "ids.txt", "manifest.json", "LATEST"
FILES = (INDEX_FILE, IDS_FILE, MANIFEST_FILE)


@dataclass(frozen=True)
class IndexArtifact:
    """Where a saved index lives and what it is (the manifest)."""

    uri: str  # the version folder, local path or s3://bucket/prefix/<version>
    version: str
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class LoadedIndex:
    index: faiss.Index
    ids: npt.NDArray[np.str_]
    manifest: dict[str, Any]


def artifact_version(ids: list[str], vectors: npt.NDArray[np.float32], params: dict[str, Any]) -> str:
    """Content hash (16 hex digits) of what determines an index: template ids, their vectors, build params.

    Hashing the inputs rather than the index bytes makes the version known before building, so a
    re-run with unchanged templates and settings finds the artifact and builds nothing (multi-threaded
    HNSW construction is not bit-reproducible, its inputs are).
    """
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode("utf-8"))
    h.update(b"\0ids\0")
    h.update("\n".join(ids).encode("utf-8"))
    h.update(b"\0vectors\0")
    h.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    return h.hexdigest()[:16]


def serialize(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()  # type: ignore[no-any-return]


def deserialize(data: bytes) -> faiss.Index:
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def find_artifact(root: str, version: str) -> IndexArtifact | None:
    """The complete artifact `version` under `root`, or None (a folder without manifest is incomplete)."""
    uri = storage.join(root, version)
    manifest = storage.join(uri, MANIFEST_FILE)
    if not storage.exists(manifest):
        return None
    return IndexArtifact(uri, version, json.loads(storage.read_bytes(manifest)))


def save_artifact(
    index: faiss.Index, ids: list[str], manifest: dict[str, Any], root: str, version: str
) -> IndexArtifact:
    """Write the artifact `version` under `root` (local or s3://) unless it exists; point LATEST at it."""
    if any("\n" in i for i in ids):
        raise ValueError("template ids must not contain newlines")
    with tempfile.TemporaryDirectory(prefix="fi-ids-") as tmp:
        ids_file = Path(tmp, IDS_FILE)
        ids_file.write_text("\n".join(ids), encoding="utf-8")
        return save_artifact_files(index, ids_file, len(ids), manifest, root, version)


def save_artifact_files(
    index: faiss.Index, ids_file: Path, n_ids: int, manifest: dict[str, Any], root: str, version: str
) -> IndexArtifact:
    """save_artifact for an id map already on local disk (one id per line, `n_ids` of them), as build_index
    writes it while streaming a bank; the index goes to disk with faiss.write_index, never as a bytes copy."""
    if n_ids != index.ntotal:
        raise ValueError(f"id map has {n_ids} ids but the index holds {index.ntotal} vectors")
    found = find_artifact(root, version)
    if found is None:
        uri = storage.join(root, version)
        with tempfile.TemporaryDirectory(prefix="fi-index-") as tmp:
            faiss.write_index(index, os.path.join(tmp, INDEX_FILE))
            size = os.path.getsize(os.path.join(tmp, INDEX_FILE))
            full = {**manifest, "version": version, "n": int(index.ntotal), "dim": int(index.d), "bytes": size}
            shutil.copyfile(ids_file, os.path.join(tmp, IDS_FILE))
            Path(tmp, MANIFEST_FILE).write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")
            _upload_folder(tmp, uri)  # the manifest goes last: its presence marks a complete artifact
        found = IndexArtifact(uri, version, full)
    set_latest(root, version)
    return found


def set_latest(root: str, version: str) -> None:
    storage.write_bytes(storage.join(root, LATEST_FILE), version.encode())


class IndexNotFoundError(ConfigError, FileNotFoundError):
    """No index was built under the index root yet (the CLI prints it as one line, exit 2)."""


def latest_artifact(root: str) -> IndexArtifact:
    """The artifact LATEST points at, or a clear error when build_index has not run."""
    latest = storage.join(root, LATEST_FILE)
    if not storage.exists(latest):
        raise IndexNotFoundError(f"no index under {root}: run build_index first (fi-spark build-index)")
    version = storage.read_bytes(latest).decode().strip()
    uri = storage.join(root, version)
    return IndexArtifact(uri, version, json.loads(storage.read_bytes(storage.join(uri, MANIFEST_FILE))))


# --------------------------------------------------------------------------- per-process loading
def load_cached(version: str, loader: Callable[[], LoadedIndex]) -> LoadedIndex:
    """The index for `version`, loaded once per worker process (fi_spark.worker_cache)."""
    return worker_cache.acquire(("index", version), loader)


def load_artifact(uri: str, version: str, cache_dir: str = "~/.cache/fi-spark/index") -> LoadedIndex:
    """The artifact at `uri` (local or s3://), loaded at most once per process."""
    return load_cached(version, lambda: load_folder(local_copy(uri, version, cache_dir)))


def local_copy(uri: str, version: str, cache_dir: str) -> str:
    """A local folder with the artifact: `uri` itself, or a once-per-machine download of an s3:// artifact."""
    return storage.local_path(uri) if not storage.is_remote(uri) else _download(uri, version, cache_dir)


def load_folder(folder: str) -> LoadedIndex:
    """Read an artifact folder from local disk, memory-mapping the index where FAISS supports it."""
    path = os.path.join(folder, INDEX_FILE)
    try:
        index = faiss.read_index(path, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:  # index types without mmap support are read into memory
        index = faiss.read_index(path)
    ids = np.array(Path(folder, IDS_FILE).read_text(encoding="utf-8").split("\n"), dtype=object)
    manifest = json.loads(Path(folder, MANIFEST_FILE).read_text(encoding="utf-8"))
    if len(ids) != index.ntotal:
        raise RuntimeError(f"index artifact {folder} is inconsistent: {len(ids)} ids for {index.ntotal} vectors")
    return LoadedIndex(index, ids, manifest)


def clear_cache() -> None:
    """Forget loaded indexes (tests; a long-lived process switching banks)."""
    worker_cache.release("index")


# --------------------------------------------------------------------------- moving artifact folders
def _upload_folder(local: str, dest: str) -> None:
    """Copy the artifact files to `dest`; the manifest last, since its presence marks a complete artifact."""
    if storage.is_remote(dest):
        for name in FILES:
            storage.copy_file(os.path.join(local, name), storage.join(dest, name))
        return
    dest = storage.local_path(dest)
    tmp = f"{dest}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(local, tmp)
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, dest)
    except OSError:  # another process finished the same version first
        shutil.rmtree(tmp, ignore_errors=True)


def _download(uri: str, version: str, cache_dir: str) -> str:
    folder = os.path.join(os.path.expanduser(cache_dir), version)
    if os.path.exists(os.path.join(folder, MANIFEST_FILE)):
        return folder
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f"{version}.", dir=os.path.dirname(folder))
    for name in FILES:
        storage.copy_file(storage.join(uri, name), os.path.join(tmp, name))
    try:
        os.rename(tmp, folder)
    except OSError:  # another process on this machine won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
