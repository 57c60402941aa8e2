"""Engine start-up decisions without a Spark session: the supported Spark versions and the addArtifacts probe."""

from __future__ import annotations

import os
from typing import Any

import pytest

from fi_spark import engine as engine_mod
from fi_spark.config import ConfigError, EngineConfig, IndexConfig
from fi_spark.engine import Capabilities, Engine, EngineError, check_spark_version, probe_artifacts, start_engine
from fi_spark.index.distribute import choose_strategy


@pytest.mark.parametrize("version", ["3.5.0", "3.5.3-amzn-1", "4.0.0", "4.0.1", " 4.0.1.dev0"])
def test_supported_spark_versions_start(version: str) -> None:
    """Spark 3.5.x (EMR 7, DBR 15.4-16) and 4.0.x (DBR 17, Sail) pass the check."""
    check_spark_version(version, "cluster")


@pytest.mark.parametrize("version", ["3.4.1", "3.3.2", "2.4.8", "4.1.0", "5.0.0"])
def test_unsupported_spark_versions_are_refused_in_one_sentence(version: str) -> None:
    """Older or newer Spark is refused with a message naming the version and the supported range."""
    with pytest.raises(EngineError) as err:
        check_spark_version(version, "cluster")
    message = str(err.value)
    assert f"Spark {version} is not supported" in message and "3.5.x to 4.0.x" in message
    assert "\n" not in message
    assert isinstance(err.value, ConfigError)  # so the CLI prints it as one line and exits 2


def test_an_unreadable_version_is_refused() -> None:
    """A session that reports no version string is not silently accepted."""
    with pytest.raises(EngineError, match="cannot tell the Spark version"):
        check_spark_version("", "connect")


class FakeSession:
    def __init__(self, version: str, refuse: bool = False) -> None:
        self.version = version
        self.refuse = refuse
        self.added: list[tuple[str, bool]] = []
        self.stopped = False

    def addArtifacts(self, *paths: str, file: bool = False) -> None:  # noqa: N802 - pyspark's name
        if self.refuse:
            raise RuntimeError("UnsupportedOperationException: handle add artifacts\n(more lines)")
        for path in paths:
            assert os.path.getsize(path) > 0
            self.added.append((os.path.basename(path), file))

    def stop(self) -> None:
        self.stopped = True


def test_start_refuses_an_unsupported_version_and_stops_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """start_engine checks the version the session reports, and leaves nothing running when it refuses."""
    session = FakeSession("3.4.1")

    def fake_start(cfg: EngineConfig, app_name: str) -> Engine:
        caps = Capabilities("cluster", delta=False, spark_context=True, artifacts=False, spark_version=session.version)
        engine = Engine(session, caps)  # type: ignore[arg-type]
        engine._stoppers.append(session.stop)
        return engine

    monkeypatch.setitem(engine_mod.STARTERS, "cluster", fake_start)
    with pytest.raises(EngineError, match="Spark 3.4.1 is not supported"):
        start_engine(EngineConfig(mode="cluster"))
    assert session.stopped


def test_probe_finds_a_server_that_takes_artifacts() -> None:
    """A server that accepts addArtifacts gets one small, uniquely named file."""
    session = FakeSession("4.0.1")
    assert probe_artifacts(session) is True  # type: ignore[arg-type]
    assert len(session.added) == 1
    name, as_file = session.added[0]
    assert name.startswith("fi-spark-probe-") and as_file is True
    probe_artifacts(session)  # type: ignore[arg-type]
    assert session.added[0][0] != session.added[1][0]


def test_probe_reports_a_server_that_refuses_artifacts() -> None:
    """Sail's UnsupportedOperationException means: no artifacts, so auto uses the shared path."""
    assert probe_artifacts(FakeSession("4.0.1", refuse=True)) is False  # type: ignore[arg-type]


def test_auto_strategy_follows_the_probed_capability() -> None:
    """The same `connect` mode gets artifacts or the shared path depending on what the server supports."""
    cfg = IndexConfig()
    with_artifacts = Capabilities("connect", delta=True, spark_context=False, artifacts=True)
    without: Any = Capabilities("connect", delta=True, spark_context=False, artifacts=False)
    assert choose_strategy(with_artifacts, 1000, cfg) == "artifacts"
    assert choose_strategy(without, 1000, cfg) == "path"
    with pytest.raises(ConfigError, match="does not support spark.addArtifacts"):
        choose_strategy(without, 1000, IndexConfig(distribute="artifacts"))


def test_a_missing_index_is_a_config_error_naming_the_command(tmp_path) -> None:
    """No index built yet: a ConfigError (CLI: one line, exit 2) that says to run build-index."""
    from fi_spark.index.artifact import latest_artifact

    with pytest.raises(ConfigError, match=r"no index under .*: run build_index first \(fi-spark build-index\)"):
        latest_artifact(str(tmp_path / "index"))


def test_batch_rows_reach_sail_for_its_start_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sail reads SAIL_EXECUTION__BATCH_SIZE when its server starts: set then, removed after, so a later engine
    in this process (another batch_rows, or none) starts with its own."""
    monkeypatch.delenv(engine_mod.SAIL_BATCH_ENV, raising=False)
    with engine_mod._sail_settings(EngineConfig(batch_rows=512)):
        assert os.environ[engine_mod.SAIL_BATCH_ENV] == "512"
    assert engine_mod.SAIL_BATCH_ENV not in os.environ
    with engine_mod._sail_settings(EngineConfig(batch_rows=None)):
        assert engine_mod.SAIL_BATCH_ENV not in os.environ


def test_a_batch_size_the_user_exported_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine_mod.SAIL_BATCH_ENV, "4096")
    with engine_mod._sail_settings(EngineConfig(batch_rows=1024)):
        assert os.environ[engine_mod.SAIL_BATCH_ENV] == "4096"
    assert os.environ[engine_mod.SAIL_BATCH_ENV] == "4096"


def test_batch_rows_below_a_useful_batch_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        EngineConfig(batch_rows=8)
