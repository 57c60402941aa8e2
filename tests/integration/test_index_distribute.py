"""Each index distribution strategy delivers the same index to Spark workers (classic: broadcast, addFile, path;
Sail: path), and the worker-side load happens through the per-process cache."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

from fi_spark.config import ConfigError, IndexConfig
from fi_spark.engine import Engine
from fi_spark.index.artifact import artifact_version, save_artifact
from fi_spark.index.build import build_index
from fi_spark.index.distribute import IndexHandle, ship_index


def saved_artifact(tmp_path: Path):
    x = np.eye(8, dtype=np.float32)
    ids = [f"t{i}" for i in range(8)]
    index = build_index(x, IndexConfig())
    return save_artifact(index, ids, {"model": "m"}, str(tmp_path / "index"), artifact_version(ids, x, {}))


def probe(engine: Engine, handle: IndexHandle) -> list[tuple[int, str, int]]:
    """Each worker loads the index through the handle and looks up the i-th unit vector."""

    def lookup(batches):  # nested, so classic workers unpickle it by value (they cannot import test modules)
        loaded = handle.load()
        for batch in batches:
            _, ids = loaded.index.search(np.eye(8, dtype=np.float32)[batch["i"].to_numpy()], 1)
            yield pd.DataFrame({"i": batch["i"], "template_id": loaded.ids[ids[:, 0]], "n": loaded.index.ntotal})

    df = engine.spark.range(8).selectExpr("cast(id as int) as i").repartition(3)
    out = df.mapInPandas(lookup, "i int, template_id string, n long").collect()
    return sorted((r.i, r.template_id, r.n) for r in out)


EXPECTED = [(i, f"t{i}", 8) for i in range(8)]


@pytest.mark.parametrize("strategy", ["broadcast", "addfile", "path"])
def test_classic_strategies(local_engine: Engine, tmp_path: Path, strategy: str) -> None:
    """broadcast / addFile / shared path all give workers the index and its id map."""
    faiss.omp_set_num_threads(1)
    handle = ship_index(
        local_engine.spark, local_engine.caps, saved_artifact(tmp_path), IndexConfig(distribute=strategy)
    )
    assert handle.strategy == strategy
    assert probe(local_engine, handle) == EXPECTED


def test_embedded_uses_the_shared_path(embedded_engine: Engine, tmp_path: Path) -> None:
    """On Sail (no sparkContext, no addArtifacts) auto picks the path; asking for broadcast is a config error."""
    artifact = saved_artifact(tmp_path)
    handle = ship_index(embedded_engine.spark, embedded_engine.caps, artifact, IndexConfig())
    assert handle.strategy == "path"
    assert probe(embedded_engine, handle) == EXPECTED
    with pytest.raises(ConfigError, match="sparkContext"):
        ship_index(embedded_engine.spark, embedded_engine.caps, artifact, IndexConfig(distribute="broadcast"))
