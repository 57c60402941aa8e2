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
sparkContext available (broadcast / addFile), Spark Connect artifacts supported.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

from fi_spark.config import EngineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capabilities:
    mode: str
    delta: bool
    spark_context: bool
    artifacts: bool
    udfs_in_driver_process: bool = False  # Sail runs Python UDFs in the server, i.e. in our own process


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
    starters = {"embedded": _embedded, "local": _local, "connect": _connect, "cluster": _cluster}
    engine = starters[cfg.mode](cfg, app_name)
    _apply_session_conf(engine.spark, cfg)
    log.info(
        "engine %s ready (delta=%s, sparkContext=%s, artifacts=%s)",
        cfg.mode,
        engine.caps.delta,
        engine.caps.spark_context,
        engine.caps.artifacts,
    )
    return engine


def _apply_session_conf(spark: SparkSession, cfg: EngineConfig) -> None:
    settings = {"spark.sql.shuffle.partitions": str(cfg.shuffle_partitions)}
    if cfg.mode in ("embedded", "connect"):
        settings.update(cfg.spark_conf)
    for key, value in settings.items():
        try:
            spark.conf.set(key, value)
        except Exception as exc:  # noqa: BLE001 - some managed sessions forbid setting some keys
            log.warning("could not set %s=%s on this engine: %s", key, value, exc)


def _embedded(cfg: EngineConfig, app_name: str) -> Engine:
    try:
        from pysail.spark import SparkConnectServer
    except ImportError as exc:  # pragma: no cover - pysail is a hard dependency
        raise RuntimeError("engine.mode=embedded needs the pysail package: pip install pysail") from exc
    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    host, port = server.listening_address
    # create(), not getOrCreate(): another Connect session in this process must not be reused (and stopped).
    spark = SparkSession.builder.remote(f"sc://{host}:{port}").appName(app_name).create()
    log.info("embedded Sail server listening on %s:%s", host, port)
    engine = Engine(
        spark, Capabilities("embedded", delta=True, spark_context=False, artifacts=False, udfs_in_driver_process=True)
    )
    engine._stoppers += [spark.stop, server.stop]
    atexit.register(engine.stop)
    return engine


def _local(cfg: EngineConfig, app_name: str) -> Engine:
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
    engine = Engine(spark, Capabilities("local", delta=_jvm_has_delta(spark), spark_context=True, artifacts=False))
    engine._stoppers.append(spark.stop)
    atexit.register(engine.stop)
    return engine


def _connect(cfg: EngineConfig, app_name: str) -> Engine:
    assert cfg.connect_url  # checked by EngineConfig
    try:
        spark = SparkSession.builder.remote(cfg.connect_url).appName(app_name).getOrCreate()
        spark.sql("SELECT 1").collect()
    except Exception as exc:
        raise RuntimeError(f"could not reach a Spark Connect server at {cfg.connect_url}: {exc}") from exc
    # Connect servers (Databricks serverless/shared, Spark Connect) have no sparkContext; Databricks and
    # Sail both write Delta; a plain OSS Spark Connect server without delta-spark must set tables.format.
    engine = Engine(spark, Capabilities("connect", delta=True, spark_context=False, artifacts=True))
    engine._stoppers.append(spark.stop)
    return engine


def _cluster(cfg: EngineConfig, app_name: str) -> Engine:
    spark = SparkSession.getActiveSession() or SparkSession.builder.appName(app_name).getOrCreate()
    has_context = _has_spark_context(spark)
    delta = _jvm_has_delta(spark) if has_context else True
    # A job owns nothing of a cluster session: the cluster manager stops it when the job ends.
    return Engine(spark, Capabilities("cluster", delta=delta, spark_context=has_context, artifacts=not has_context))


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
