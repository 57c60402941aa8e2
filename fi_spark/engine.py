"""One entry point for a SparkSession, whatever runs it, plus what that engine can do.

Modes (``engine.mode``):

- ``embedded`` (default): Sail (PyPI ``pysail``), a Rust engine that speaks Spark Connect, started
  in-process on a free loopback port and stopped at exit. Writes real Delta tables. Python UDFs run
  inside this process, so no separate Python worker setup is needed.
- ``local``: classic PySpark ``local[*]`` (JVM). Python workers are pinned to *this* interpreter
  (``PYSPARK_PYTHON``), otherwise Spark picks the system Python, which lacks our packages.
- ``connect``: any ``sc://`` URL: Databricks Connect, a remote Spark Connect server or a Sail server.
- ``cluster``: the session that ``spark-submit`` (EMR, Databricks job clusters) already created.

The rest of the code asks ``Engine.caps`` instead of guessing from the mode: Delta available,
sparkContext available (broadcast / addFile), Spark Connect artifacts supported. Capabilities that
differ between servers of one mode are probed once at start, not assumed: a Sail server answers
``spark.addArtifacts`` with UnsupportedOperationException, Databricks and OSS Spark Connect accept it.

Supported Spark versions: 3.5.x and 4.0.x (EMR 7.x runs 3.5; Databricks Runtime 15.4-16.x run 3.5,
17.x runs 4.0; embedded Sail speaks the 4.0 protocol). Other versions are refused at start with one
message (``EngineError``, a ConfigError, so the CLI prints one line and exits 2).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import socket
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from fi_spark.config import ConfigError, EngineConfig
from fi_spark.config.checks import check_delta_package
from fi_spark.redact import redact, redact_url

log = logging.getLogger(__name__)

# (major, minor) versions of Spark that fi-spark runs on, oldest and newest, both included.
SUPPORTED_SPARK = ((3, 5), (4, 0))


class EngineError(ConfigError):
    """The engine cannot be started or used as configured (unreachable URL, unsupported Spark version)."""


@dataclass(frozen=True)
class Capabilities:
    mode: str
    delta: bool
    spark_context: bool
    artifacts: bool
    udfs_in_driver_process: bool = False  # Sail runs Python UDFs in the server, i.e. in our own process
    spark_version: str = ""  # what the session reports (spark.version)


@dataclass
class Engine:
    spark: SparkSession
    caps: Capabilities
    _stoppers: list[Any] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop the session and, for embedded mode, the Sail server. Safe to call twice."""
        stoppers, self._stoppers = self._stoppers, []
        for stop in stoppers:
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - shutdown must not mask the job's own outcome
                log.debug("engine shutdown step failed: %s", exc)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_engine(cfg: EngineConfig, app_name: str = "fi-spark") -> Engine:
    """Return a running Engine for ``cfg.mode``; raises RuntimeError with a clear message on failure."""
    engine = STARTERS[cfg.mode](cfg, app_name)
    try:
        check_spark_version(engine.caps.spark_version, cfg.mode)
        check_delta_runtime(cfg, engine.caps.spark_version)
    except EngineError:
        engine.stop()
        raise
    _apply_session_conf(engine.spark, cfg)
    log.info(
        "engine %s ready (Spark %s, delta=%s, sparkContext=%s, artifacts=%s)",
        cfg.mode,
        engine.caps.spark_version or "?",
        engine.caps.delta,
        engine.caps.spark_context,
        engine.caps.artifacts,
    )
    return engine


def check_spark_version(version: str, mode: str) -> None:
    """Raise EngineError unless ``version`` (e.g. ``3.5.1``, ``4.0.1-amzn-0``) is in SUPPORTED_SPARK."""
    (lo_major, lo_minor), (hi_major, hi_minor) = SUPPORTED_SPARK
    supported = f"{lo_major}.{lo_minor}.x to {hi_major}.{hi_minor}.x"
    match = re.match(r"\s*(\d+)\.(\d+)", version or "")
    if not match:
        raise EngineError(
            f"engine.mode={mode}: cannot tell the Spark version ({version!r}); fi-spark supports {supported}"
        )
    found = (int(match.group(1)), int(match.group(2)))
    if not SUPPORTED_SPARK[0] <= found <= SUPPORTED_SPARK[1]:
        raise EngineError(
            f"engine.mode={mode}: Spark {version} is not supported; fi-spark runs on Spark {supported} "
            "(EMR 7.x, Databricks Runtime 15.4 LTS to 17.x)"
        )


def check_delta_runtime(cfg: EngineConfig, spark_version: str) -> None:
    """Raise EngineError when `engine.delta_package` was built for another Spark or Scala than the running one.

    Embedded Sail writes Delta itself (no jar), so the coordinate only matters on JVM engines.
    """
    if not cfg.delta_package or cfg.mode == "embedded":
        return
    problems = check_delta_package(cfg.delta_package, spark_version)
    if problems:
        raise EngineError(" ".join(problems))


def probe_artifacts(spark: SparkSession) -> bool:
    """Whether this Spark Connect server accepts ``spark.addArtifacts``: try it once with a tiny file.

    The file name is unique, so a server that keeps artifacts per session never sees a clash.
    """
    add = getattr(spark, "addArtifacts", None)
    if add is None:
        return False
    with tempfile.TemporaryDirectory(prefix="fi-probe-") as folder:
        path = os.path.join(folder, f"fi-spark-probe-{uuid.uuid4().hex}.txt")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("probe\n")
        try:
            add(path, file=True)
        except Exception as exc:  # noqa: BLE001 - any refusal means: use another strategy
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            log.info("this Spark Connect server does not take spark.addArtifacts (%s)", reason)
            return False
    return True


def _apply_session_conf(spark: SparkSession, cfg: EngineConfig) -> None:
    settings = {"spark.sql.shuffle.partitions": str(cfg.shuffle_partitions)}
    if cfg.mode in ("embedded", "connect"):
        settings.update(cfg.spark_conf)
    for key, value in settings.items():
        try:
            spark.conf.set(key, value)
        except Exception as exc:  # noqa: BLE001 - some managed sessions forbid setting some keys
            log.warning("could not set %s=%s on this engine: %s", key, redact(value, key), exc)


SAIL_BATCH_ENV = "SAIL_EXECUTION__BATCH_SIZE"


@contextmanager
def _sail_settings(cfg: EngineConfig) -> Iterator[None]:
    """Sail reads its settings from SAIL_* environment variables once, when a server starts: set
    engine.batch_rows there for this start only (a later engine in this process gets its own), unless the
    user exported the variable themselves."""
    if cfg.batch_rows is None or SAIL_BATCH_ENV in os.environ:
        if cfg.batch_rows is not None:
            log.info(
                "%s=%s from the environment overrides engine.batch_rows", SAIL_BATCH_ENV, os.environ[SAIL_BATCH_ENV]
            )
        yield
        return
    os.environ[SAIL_BATCH_ENV] = str(cfg.batch_rows)
    try:
        yield
    finally:
        os.environ.pop(SAIL_BATCH_ENV, None)


def _embedded(cfg: EngineConfig, app_name: str) -> Engine:
    try:
        from pysail.spark import SparkConnectServer
    except ImportError as exc:  # pragma: no cover - pysail is a hard dependency
        raise RuntimeError("engine.mode=embedded needs the pysail package: pip install pysail") from exc
    with _sail_settings(cfg):
        server = SparkConnectServer("127.0.0.1", 0)
        server.start(background=True)
    host, port = server.listening_address
    # create(), not getOrCreate(): another Connect session in this process must not be reused (and stopped).
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").appName(app_name).create()
    log.info("embedded Sail server listening on %s:%s", host, port)
    caps = Capabilities(
        "embedded",
        delta=True,
        spark_context=False,
        artifacts=False,
        udfs_in_driver_process=True,
        spark_version=spark.version,
    )
    engine = Engine(spark, caps)
    engine._stoppers += [spark.stop, server.stop]
    atexit.register(engine.stop)
    return engine


def _require_classic_pyspark(mode: str) -> None:
    """The `spark` extra brings only the Spark Connect client (pyspark-client): the JVM engine needs full pyspark."""
    try:
        from pyspark.util import is_remote_only  # pyspark >= 4.0
    except ImportError:  # pyspark 3.5 (a cluster's) is always the full package
        return
    if is_remote_only():
        raise ConfigError(
            f"engine.mode={mode} needs the classic JVM engine, but this pyspark is the Spark Connect client only "
            "(pyspark-client, the `spark` extra): install the `classic` extra instead "
            "(pip uninstall -y pyspark-client && pip install -c constraints.txt 'fi-spark[classic]'), or use "
            "engine.mode=embedded"
        )


def _local(cfg: EngineConfig, app_name: str) -> Engine:
    _require_classic_pyspark("local")
    # Workers must run this interpreter (the virtualenv's), or they import a Python without our packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # A Spark Connect session started earlier in this process (e.g. embedded) flags the process as
    # "connect mode"; a classic session must not inherit that flag.
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    # local[*] never needs the network: bind the driver to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(cfg.local_master).appName(app_name).config("spark.api.mode", "classic")
    builder = builder.config("spark.ui.showConsoleProgress", "false").config("spark.ui.enabled", "false")
    builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    for key, value in cfg.spark_conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    caps = Capabilities(
        "local", delta=_jvm_has_delta(spark), spark_context=True, artifacts=False, spark_version=spark.version
    )
    engine = Engine(spark, caps)
    engine._stoppers.append(spark.stop)
    atexit.register(engine.stop)
    return engine


def check_reachable(url: str, timeout_s: float = 10.0) -> None:
    """Fail fast with one sentence when nothing listens at a ``sc://host:port`` URL.

    The Connect client itself retries an unreachable server for minutes before it gives up.
    """
    match = re.match(r"sc://(\[[^\]]+\]|[^:/;]+)(?::(\d+))?(?:[/;].*)?$", url.strip())
    if not match:
        raise EngineError(
            f"engine.connect_url={redact_url(url)!r} is not a Spark Connect URL; set engine.connect_url=sc://HOST:PORT"
        )
    host, port = match.group(1).strip("[]"), int(match.group(2) or 15002)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise EngineError(
            f"could not reach a Spark Connect server at {redact_url(url)} ({exc.strerror or exc}); start one or set "
            "engine.connect_url=sc://HOST:PORT"
        ) from None


def _connect(cfg: EngineConfig, app_name: str) -> Engine:
    assert cfg.connect_url  # checked by EngineConfig
    check_reachable(cfg.connect_url)
    try:
        spark = SparkSession.builder.remote(cfg.connect_url).appName(app_name).getOrCreate()
        spark.sql("SELECT 1").collect()
    except Exception as exc:  # noqa: BLE001 - grpc, URL parsing and auth errors all mean: not reachable
        reason = redact_url(str(exc).strip().splitlines()[0][:300]) if str(exc).strip() else type(exc).__name__
        raise EngineError(
            f"could not reach a Spark Connect server at {redact_url(cfg.connect_url)} ({reason}); start one or set "
            "engine.connect_url=sc://HOST:PORT"
        ) from None
    # Connect servers (Databricks serverless/shared, Spark Connect) have no sparkContext; Databricks and
    # Sail both write Delta; a plain OSS Spark Connect server without delta-spark must set tables.format.
    caps = Capabilities(
        "connect", delta=True, spark_context=False, artifacts=probe_artifacts(spark), spark_version=spark.version
    )
    engine = Engine(spark, caps)
    engine._stoppers.append(spark.stop)
    return engine


def _cluster(cfg: EngineConfig, app_name: str) -> Engine:
    spark = SparkSession.getActiveSession() or SparkSession.builder.appName(app_name).getOrCreate()
    has_context = _has_spark_context(spark)
    delta = _jvm_has_delta(spark) if has_context else True
    artifacts = False if has_context else probe_artifacts(spark)  # Databricks serverless jobs: a Connect session
    # A job owns nothing of a cluster session: the cluster manager stops it when the job ends.
    caps = Capabilities(
        "cluster", delta=delta, spark_context=has_context, artifacts=artifacts, spark_version=spark.version
    )
    return Engine(spark, caps)


STARTERS: dict[str, Callable[[EngineConfig, str], Engine]] = {
    "embedded": _embedded,
    "local": _local,
    "connect": _connect,
    "cluster": _cluster,
}


def _has_spark_context(spark: SparkSession) -> bool:
    try:
        return spark.sparkContext is not None
    except Exception:  # noqa: BLE001 - Spark Connect sessions raise on .sparkContext
        return False


def _jvm_has_delta(spark: SparkSession) -> bool:
    """Delta needs both the jars on the classpath and the session extension configured."""
    try:
        jvm: Any = spark.sparkContext._jvm  # type: ignore[attr-defined]
        jvm.java.lang.Class.forName("io.delta.sql.DeltaSparkSessionExtension")
    except Exception:  # noqa: BLE001 - class not found means no Delta jars
        return False
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "DeltaSparkSessionExtension" in extensions
