"""Getting the template index to the workers: one handle, four strategies.

`ship_index(spark, caps, artifact, cfg)` returns an `IndexHandle`, a small picklable object the
match stage closes over in its mapInPandas function; on the worker, `handle.load()` returns the
index through the per-process cache (fi_spark.index.artifact), so each worker process
deserializes or memory-maps it once whatever the number of tasks and batches.

| strategy  | how                                                   | when (`index.distribute=auto`)             |
|-----------|-------------------------------------------------------|--------------------------------------------|
| path      | workers read the artifact folder (shared disk / s3)   | index > path_min_mb, on every engine       |
| broadcast | `sparkContext.broadcast((bytes, ids, manifest))`       | classic Spark, index <= broadcast_max_mb   |
| addfile   | `sparkContext.addFile(folder, recursive=True)`         | classic Spark, larger indexes              |
| artifacts | `spark.addArtifacts(files, file=True)` + SparkFiles    | Connect servers that accept addArtifacts   |
| path      |                                                       | Sail (embedded or its own process), others |

A bank-sized index (IVF-PQ, ~64 bytes per template: ~1.2 GB at 18M) always takes the path: the driver never
reads it (broadcast would hold it in the driver and pickle it to every executor), no copy is shipped per
executor (addfile / addArtifacts), and each worker process opens the file with FAISS IO_FLAG_MMAP (an s3://
artifact is downloaded once per machine first). Measured (bench/index_scale.py): a 2M-template IVF-PQ
fast-scan index (274 MB) loads in 0.9 s and grows a fresh process by ~420 MB (index + id map), i.e. FAISS
brings the fast-scan lists into memory; every Python worker process pays that once.

Whether a Connect server accepts addArtifacts is probed once when the engine starts
(fi_spark.engine.probe_artifacts), never assumed from the mode; if shipping the index itself is then
refused, `auto` falls back to the path strategy. The path strategy needs the artifact folder
(`index.location`, default <output>/index) to be readable where the UDFs run: on the same machine for
a local Sail server, on s3:// or a shared disk for a remote one.

This is the only module that touches `sparkContext`, and only when the engine reports one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fi_spark.config.index import IndexConfig
from fi_spark.index.artifact import (
    FILES,
    IDS_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    IndexArtifact,
    LoadedIndex,
    deserialize,
    load_artifact,
    load_cached,
    load_folder,
    local_copy,
)
from fi_spark.index.build import configure_search
from fi_spark.section import ConfigError

STRATEGIES = ("broadcast", "addfile", "artifacts", "path")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexHandle:
    """What a worker needs to obtain the index; pickled into the UDF closure."""

    version: str
    strategy: str
    uri: str  # the artifact folder (path strategy) or its basename (addfile / artifacts)
    cfg: IndexConfig
    broadcast: Any = None  # pyspark Broadcast of (index bytes, ids, manifest)

    def load(self) -> LoadedIndex:
        """The index for this version, loaded at most once per worker process."""
        if self.strategy == "broadcast":
            loaded = load_cached(self.version, self._from_broadcast)
        elif self.strategy == "path":
            loaded = load_artifact(self.uri, self.version, self.cfg.cache_dir)
        else:
            loaded = load_cached(self.version, self._from_spark_files)
        configure_search(loaded.index, self.cfg)
        return loaded

    def _from_broadcast(self) -> LoadedIndex:
        data, ids, manifest = self.broadcast.value
        return LoadedIndex(deserialize(data), np.array(ids, dtype=object), manifest)

    def _from_spark_files(self) -> LoadedIndex:
        from pyspark import SparkFiles

        if self.strategy == "addfile":
            return load_folder(SparkFiles.get(self.uri))
        folder = tempfile.mkdtemp(prefix=f"fi-index-{self.version}-")  # artifacts arrive as flat files
        for name in FILES:
            os.symlink(os.path.abspath(_spark_file(f"{self.version}.{name}")), os.path.join(folder, name))
        return load_folder(folder)


def choose_strategy(caps: Any, size_bytes: int, cfg: IndexConfig) -> str:
    """Pick a strategy from the engine's capabilities (fi_spark.engine.Capabilities) and the index size."""
    if cfg.distribute != "auto":
        wanted = cfg.distribute
        if wanted in ("broadcast", "addfile") and not caps.spark_context:
            raise ConfigError(f"index.distribute={wanted} needs a classic Spark session (sparkContext); use auto")
        if wanted == "artifacts" and not caps.artifacts:
            raise ConfigError("index.distribute=artifacts: this engine does not support spark.addArtifacts; use auto")
        return wanted
    if size_bytes > cfg.path_min_mb * 1024 * 1024:
        return "path"
    if caps.spark_context:
        return "broadcast" if size_bytes <= cfg.broadcast_max_mb * 1024 * 1024 else "addfile"
    if caps.artifacts:
        return "artifacts"
    return "path"


def ship_index(spark: Any, caps: Any, artifact: IndexArtifact, cfg: IndexConfig) -> IndexHandle:
    """Make the artifact available to workers and return the handle they load it with."""
    size = int(artifact.manifest.get("bytes", 0))
    strategy = choose_strategy(caps, size, cfg)
    if strategy == "path":
        log.info(
            "index %s: workers load it from %s (shared path, once per worker process)", artifact.version, artifact.uri
        )
        return IndexHandle(artifact.version, strategy, artifact.uri, cfg)
    local = local_copy(artifact.uri, artifact.version, cfg.cache_dir)
    if strategy == "broadcast":
        loaded = load_folder(local)
        data = Path(local, INDEX_FILE).read_bytes()
        value = (data, [str(i) for i in loaded.ids], loaded.manifest)
        return IndexHandle(artifact.version, strategy, artifact.uri, cfg, spark.sparkContext.broadcast(value))
    if strategy == "addfile":
        shipped = _renamed_copy(local, artifact.version, flat=False)
        spark.sparkContext.addFile(shipped, recursive=True)
        return IndexHandle(artifact.version, strategy, os.path.basename(shipped), cfg)
    shipped = _renamed_copy(local, artifact.version, flat=True)
    try:
        spark.addArtifacts(*[os.path.join(shipped, f"{artifact.version}.{name}") for name in FILES], file=True)
    except Exception as exc:  # noqa: BLE001 - e.g. a size limit; auto may still use the shared path
        if cfg.distribute != "auto":
            raise
        log.warning("spark.addArtifacts refused the index (%s); workers read it from %s", exc, artifact.uri)
        return IndexHandle(artifact.version, "path", artifact.uri, cfg)
    return IndexHandle(artifact.version, strategy, artifact.version, cfg)


def _spark_file(name: str) -> str:
    """Where a file added with addArtifacts(file=True) landed: the SparkFiles root, or the UDF's cwd."""
    from pyspark import SparkFiles

    candidates = [name]
    try:
        candidates.insert(0, SparkFiles.get(name))
    except (RuntimeError, AttributeError, TypeError) as exc:  # Connect workers may have no SparkFiles root
        candidates.append(f"(SparkFiles unavailable: {exc})")
    for path in candidates:
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"index file {name} was not shipped to this worker (spark.addArtifacts): {candidates}")


def _renamed_copy(folder: str, version: str, flat: bool) -> str:
    """Copy the artifact so shipped names are unique per version (SparkFiles is one flat namespace)."""
    root = tempfile.mkdtemp(prefix="fi-ship-")
    dest = root if flat else os.path.join(root, f"fi-index-{version}")
    os.makedirs(dest, exist_ok=True)
    for name in (INDEX_FILE, IDS_FILE, MANIFEST_FILE):
        shutil.copy2(os.path.join(folder, name), os.path.join(dest, f"{version}.{name}" if flat else name))
    return dest
