"""Index artifacts: content-hash versions, idempotent save, LATEST, per-process cache, s3:// round trip."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from fi_spark.config import IndexConfig
from fi_spark.index import artifact as art
from fi_spark.index.build import build_index

faiss.omp_set_num_threads(1)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    art.clear_cache()


def test_version_is_a_content_hash_of_inputs(tmp_path: Path) -> None:
    """Same ids + vectors + params -> same version; any change -> another; save is idempotent; LATEST follows."""
    x, ids = vectors(50), [f"t{i:03d}" for i in range(50)]
    version = art.artifact_version(ids, x, {"factory": "Flat"})
    assert version == art.artifact_version(list(ids), x.copy(), {"factory": "Flat"})
    assert version != art.artifact_version(ids, x, {"factory": "HNSW32,Flat"})
    assert version != art.artifact_version(ids[::-1], x, {"factory": "Flat"})
    assert version != art.artifact_version(ids, vectors(50, seed=1), {"factory": "Flat"})
    assert art.find_artifact(str(tmp_path), version) is None
    first = art.save_artifact(build_index(x, IndexConfig()), ids, {"model": "m"}, str(tmp_path), version)
    mtime = Path(first.uri, art.INDEX_FILE).stat().st_mtime_ns
    again = art.save_artifact(build_index(x, IndexConfig()), ids, {"model": "m"}, str(tmp_path), version)
    assert again == first and Path(first.uri, art.INDEX_FILE).stat().st_mtime_ns == mtime
    assert art.find_artifact(str(tmp_path), version) == first
    other = art.save_artifact(build_index(x, IndexConfig()), ids, {}, str(tmp_path), "0" * 16)
    assert art.latest_artifact(str(tmp_path)).version == other.version
    assert first.manifest["n"] == 50 and first.manifest["dim"] == 16 and first.manifest["model"] == "m"


def test_load_round_trip_and_process_cache(tmp_path: Path) -> None:
    """A loaded artifact searches like the original; a second load returns the cached object."""
    x = vectors(40)
    index = build_index(x, IndexConfig(type="hnsw", hnsw_m=8))
    saved = art.save_artifact(index, [f"t{i}" for i in range(40)], {}, str(tmp_path), "v1")
    loaded = art.load_artifact(saved.uri, saved.version)
    _, ids = loaded.index.search(x[:3], 1)
    assert [loaded.ids[i] for i in ids[:, 0]] == ["t0", "t1", "t2"]
    assert art.load_artifact(saved.uri, saved.version) is loaded


def test_id_map_must_match_the_index(tmp_path: Path) -> None:
    """An id map of the wrong length is refused before anything is written."""
    with pytest.raises(ValueError, match="id map has 2 ids"):
        art.save_artifact(build_index(vectors(3), IndexConfig()), ["a", "b"], {}, str(tmp_path), "v1")
    assert not any(tmp_path.iterdir())


def test_missing_index_names_the_stage_to_run(tmp_path: Path) -> None:
    """Matching before build_index fails with a message saying what to run."""
    with pytest.raises(FileNotFoundError, match="build_index"):
        art.latest_artifact(str(tmp_path))


def test_s3_round_trip_with_download_cache(tmp_path: Path, moto_s3: str) -> None:
    """s3:// artifacts are uploaded, found via LATEST, and downloaded once into the cache folder."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="bank")
    x = vectors(20)
    saved = art.save_artifact(build_index(x, IndexConfig()), [f"t{i}" for i in range(20)], {}, "s3://bank/idx", "v2")
    assert saved.uri == f"s3://bank/idx/{saved.version}"
    found = art.latest_artifact("s3://bank/idx")
    loaded = art.load_artifact(found.uri, found.version, cache_dir=str(tmp_path / "cache"))
    assert loaded.index.ntotal == 20 and loaded.ids[7] == "t7"
    assert sorted(p.name for p in (tmp_path / "cache" / saved.version).iterdir()) == sorted(art.FILES)
