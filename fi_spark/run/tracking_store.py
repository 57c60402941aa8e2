"""Where MLflow runs go, and keeping that store truthful after the folder moves or a run is killed.

One resolution of the tracking URI, used by every reader and writer (the Tracker, `fi-spark runs`, the
notebooks): ``MLFLOW_TRACKING_URI``, else ``tracking.uri``, else a SQLite store inside a *local* output
folder (``<output>/mlflow.db``, artifacts in ``<output>/mlartifacts``). A URI that would land in a throwaway
directory is refused with one sentence (a ConfigError) before anything runs:

- a remote ``--output`` (s3://, dbfs:/ ...) with no URI: MLflow would write to the working directory of the
  driver, which a cluster job (EMR step, YARN container, Databricks task) deletes when it ends;
- a remote output with a *relative* sqlite/file store (it lands in that same working directory), or, on a
  cluster, with a store on the driver's local disk (only /dbfs/, /Volumes/ or /Workspace/ outlive it);
- a Databricks volume as the output of a cluster run with no URI (SQLite cannot lock a file on a volume).

Artifact paths: MLflow's SQLite and file stores record every artifact location as an absolute path
(``mlflow.utils.uri.resolve_uri_if_local``: a relative location is resolved against the working directory
when the experiment or run is created), so a relative location is not possible there. Instead, the default
store re-points itself when opened: ``relocate_artifacts`` rewrites the recorded ``.../mlartifacts`` prefix
of its experiments and runs to the folder the database now sits in, so a run folder copied or moved
elsewhere keeps its artifacts reachable (`mlflow ui` after one `fi-spark` command there). Tracking servers
and Databricks keep their own artifact roots and are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from urllib.parse import urlparse

from fi_spark import storage
from fi_spark.config import Config, ConfigError

log = logging.getLogger(__name__)

ARTIFACTS = "mlartifacts"
DURABLE_DRIVER_PATHS = ("/dbfs/", "/Volumes/", "/Workspace/")  # Databricks mounts that outlive the cluster
STORE_HINT = "set tracking.uri (or MLFLOW_TRACKING_URI) to a tracking server, `databricks`, or an absolute store path"


def resolve_tracking_uri(config: Config, output: str, *, reading: bool = False) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment or None to let the store decide).

    `reading`: for `fi-spark runs` and notebooks, which must find the store the runs wrote, never make one.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = env or config.tracking.uri
    if uri:
        check_survives(uri, output, config.engine.mode, "MLFLOW_TRACKING_URI" if env else "tracking.uri")
        return uri, None
    if storage.is_remote(output) and reading:
        raise ConfigError(
            f"--output {output} is remote: read its runs from the store they were tracked to ({STORE_HINT})"
        )
    if storage.is_remote(output):
        raise ConfigError(
            f"--output {output} is remote and no MLflow tracking URI is set: runs would go to a sqlite file in this "
            f"machine's working directory, which a cluster job deletes; {STORE_HINT}"
        )
    root = storage.local_path(output)
    if config.engine.mode in ("cluster", "connect") and root.startswith(("/Volumes/", "/dbfs/")):
        raise ConfigError(f"--output {output} is a Databricks volume, where SQLite cannot keep its store; {STORE_HINT}")
    db = os.path.join(root, "mlflow.db")
    if reading and not os.path.isfile(db):
        raise ConfigError(f"no MLflow store at {db}: pass --output RUN_FOLDER or set MLFLOW_TRACKING_URI")
    return f"sqlite:///{db}", "file://" + os.path.join(root, ARTIFACTS)


def local_store_path(uri: str) -> str | None:
    """The filesystem path of a sqlite/file store URI (as written: maybe relative), None for a server."""
    kind = storage.scheme(uri)
    if kind == "sqlite":
        return uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None  # sqlite:////abs, sqlite:///rel
    if kind == "file":
        return urlparse(uri).path or None
    return uri if kind == "" and uri != "databricks" else None  # MLflow reads a bare `databricks` as the workspace


def check_survives(uri: str, output: str, mode: str, source: str) -> None:
    """Refuse a local store that a remote run's driver would delete with its working directory."""
    path = local_store_path(uri)
    if path is None or not storage.is_remote(output):
        return
    if not os.path.isabs(path):
        raise ConfigError(
            f"{source}={uri} is a relative path and --output {output} is remote: the store would land in this "
            f"machine's working directory, which a cluster job deletes; {STORE_HINT}"
        )
    if mode == "cluster" and not path.startswith(DURABLE_DRIVER_PATHS):
        raise ConfigError(
            f"{source}={uri} is on the driver's local disk, which goes away with the cluster ({output} is remote); "
            f"{STORE_HINT} (on Databricks: /dbfs/ or /Volumes/)"
        )


def relocate_artifacts(db_path: str, root: str) -> int:
    """Point the default store's artifact locations at `<root>/mlartifacts` when the folder was moved.

    Rewrites the prefix up to `/mlartifacts` of experiments.artifact_location and runs.artifact_uri that
    name another folder; returns how many rows changed. A database MLflow has not created yet is left alone.
    """
    if not os.path.isfile(db_path):
        return 0
    new = "file://" + os.path.join(root, ARTIFACTS)
    changed = 0
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"experiments", "runs"} <= tables:
            return 0
        olds = {
            loc[: loc.index(f"/{ARTIFACTS}") + len(ARTIFACTS) + 1]
            for (loc,) in db.execute(
                "SELECT artifact_location FROM experiments WHERE artifact_location LIKE ?", (f"file://%/{ARTIFACTS}%",)
            )  # fmt: skip
        } - {new}
        for old in sorted(olds):
            for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
                cur = db.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",  # noqa: S608 - fixed names
                    (new, len(old) + 1, len(old), old),
                )
                changed += cur.rowcount
    if changed:
        log.info("MLflow store %s was moved: %d artifact locations now point at %s", db_path, changed, new)
    return changed
