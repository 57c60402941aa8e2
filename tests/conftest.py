"""Shared fixtures: one embedded (Sail) engine and, lazily, one classic local engine per test session.

Starting an engine costs seconds (Sail ~0.5 s, classic JVM ~6 s or more on 2 cores), so both are
session-scoped; tests write into their own tmp_path, never into shared tables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from fi_spark.config import Config, EngineConfig, load_config  # noqa: E402
from fi_spark.engine import Engine, start_engine  # noqa: E402
from fi_spark.stages.base import StageContext  # noqa: E402
from tests import jvm_options  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _embedded() -> Iterator[Engine]:
    engine = start_engine(EngineConfig(mode="embedded", shuffle_partitions=2))
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def _local(_embedded: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    warehouse = {"spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("spark-warehouse"))}  # not in the cwd
    conf = {**jvm_options.SPARK_CONF, **warehouse}  # (schemas the catalog tests create get a folder there)
    engine = start_engine(EngineConfig(mode="local", local_master="local[2]", shuffle_partitions=2, spark_conf=conf))
    yield engine
    engine.stop()


@pytest.fixture(autouse=True)
def _connect_mode_by_default() -> None:
    """PySpark decides per call whether Column functions build Connect or classic columns, from the
    SPARK_CONNECT_MODE_ENABLED variable; one process hosts both engines here, so each test sets it."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"


@pytest.fixture
def embedded_engine(_embedded: Engine) -> Engine:
    """Sail, started in-process (Delta tables)."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    return _embedded


@pytest.fixture
def local_engine(_local: Engine) -> Engine:
    """Classic PySpark local[2] on the JVM (Parquet tables: no Delta jars offline)."""
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    return _local


@pytest.fixture(scope="session")
def spark(_embedded: Engine):
    """The embedded (Sail) SparkSession."""
    return _embedded.spark


@pytest.fixture(params=["embedded", "local"])
def any_engine(request: pytest.FixtureRequest) -> Engine:
    """Runs the test once on each engine."""
    return request.getfixturevalue(f"{request.param}_engine")


# The test servers answer genericize with genericize.v1's {template, description} JSON and tests send queries of
# every kind; the local profile's genericize.v2 and query gates have their own tests (test_templates_prompts,
# test_instructions, test_genericize's v2 test). A test that wants the profile's own passes the keys again.
SCRIPTED_GENERICIZE = ("templates.prompt=genericize.v1", "templates.extractive_only=false")


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[..., StageContext]:
    """Build a StageContext on an engine with a config from the local profile plus overrides."""

    def factory(engine: Engine, overrides: list[str] | None = None, output: Path | None = None) -> StageContext:
        config: Config = load_config("local", ["tracking.enabled=false", *SCRIPTED_GENERICIZE, *(overrides or [])])
        out = str(output or tmp_path / "out")
        os.makedirs(out, exist_ok=True)
        return StageContext.for_output(engine, config, out, work_dir=out, log=logging.getLogger("test"))

    return factory


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present (tests using it skip cleanly elsewhere)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An in-process moto S3 server on loopback; the AWS variables point boto3 and pyarrow at it. Yields its URL."""
    moto_server = pytest.importorskip("moto.server")
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        yield url
    finally:
        server.stop()
