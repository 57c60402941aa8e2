"""build_index at bank scale, in miniature: with a low index.compress_min the stage builds IVF-PQ from
template_vectors streamed in batches (the bank is never collected on the driver), the index recalls the exact
top-10 well, a re-run reuses it, and a bank-sized index goes to workers by the shared path on every engine."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import faiss
import numpy as np
import pytest

from fi_spark.config.index import IndexConfig
from fi_spark.engine import Engine
from fi_spark.index import build_index
from fi_spark.index.artifact import IndexArtifact, latest_artifact, load_folder
from fi_spark.index.build import IndexBuilder
from fi_spark.index.distribute import ship_index
from fi_spark.schemas import TEMPLATE_VECTORS, TEMPLATES
from fi_spark.stages.base import StageContext

DIM, N = 96, 4000


def real_ish(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """Unit vectors the way bench/index_scale.py makes a bank: one of a few hundred base directions, plus up to
    half of another, plus noise -- a continuum along shared directions, not tight clumps or uniform noise."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(0).normal(size=(300, dim))
    x = base[rng.integers(0, 300, n)] + rng.uniform(0, 0.5, (n, 1)) * base[rng.integers(0, 300, n)]
    x += rng.normal(size=(n, dim)) * 0.25
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def seed_bank(ctx: StageContext, x: np.ndarray) -> list[str]:
    ids = [f"t{i:05d}" for i in range(len(x))]
    templates = [(t, f"Template {t} <fi>x</fi>", ["x"], 1, f"documents like {t}", [], "test", None) for t in ids]
    ctx.store.write(ctx.spark.createDataFrame(templates, TEMPLATES.schema), TEMPLATES)
    model = ctx.config.embed.identity()
    rows = [(t, model, bytearray(v.astype("<f4").tobytes()), DIM) for t, v in zip(ids, x, strict=True)]
    ctx.store.write(ctx.spark.createDataFrame(rows, TEMPLATE_VECTORS.schema), TEMPLATE_VECTORS)
    return ids


def test_ivfpq_is_built_from_streamed_batches(
    embedded_engine: Engine, make_ctx: Callable[..., StageContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced to IVF-PQ by a small compress_min: trained on a sample, filled in batches of add_batch, the bank never
    collected; recall@10 against exact search over fresh queries is high; a re-run builds nothing."""
    faiss.omp_set_num_threads(1)
    ctx = make_ctx(embedded_engine, ["index.flat_max=100", "index.compress_min=1000", "index.add_batch=500",
                                     "index.recall_sample=200", "index.nprobe=16"])  # fmt: skip
    x = real_ish(N, seed=1)
    ids = seed_bank(ctx, x)

    def collected(*_: Any) -> None:
        raise AssertionError("the bank was collected on the driver")

    added: list[int] = []
    add = IndexBuilder.add
    monkeypatch.setattr(build_index, "collect_vectors", collected)
    monkeypatch.setattr(IndexBuilder, "add", lambda self, batch: (added.append(len(batch)), add(self, batch))[1])

    built = build_index.run(ctx)
    manifest = latest_artifact(build_index.index_root(ctx)).manifest
    assert manifest["kind"] == "ivfpq" and manifest["streamed"] and manifest["factory"].startswith("IVF16,PQ24x4fs")
    assert sum(added) == N and max(added) <= 500 and len(added) >= N // 500
    assert 0 < manifest["train_vectors"] <= 64 * 16 and manifest["recall_queries"] <= 200
    assert built.metrics["recall_at_10"] == manifest["recall_at_k"] >= 0.7

    # recall measured here, independently of the stage: fresh queries, exact top-10 by brute force over the bank
    loaded = load_folder(latest_artifact(build_index.index_root(ctx)).uri)
    assert sorted(loaded.ids) == ids
    queries = real_ish(300, seed=2)
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    loaded.index.nprobe = 16
    _, approx = loaded.index.search(queries, 10)
    hits = [len({ids[i] for i in e} & set(loaded.ids[a[a >= 0]])) for e, a in zip(exact, approx, strict=True)]
    assert np.mean(hits) / 10 >= 0.7

    assert build_index.run(ctx).metrics["index_reused"] == 1.0


@pytest.mark.parametrize(
    "caps", [{"spark_context": True, "artifacts": False}, {"spark_context": False, "artifacts": True}]
)
def test_a_bank_sized_index_takes_the_shared_path(caps: dict[str, bool]) -> None:
    """A 2M-template IVF-PQ index (~145 MB, bench/index_scale.py) is read by the workers from index.location on
    classic Spark and Connect alike, with no setting: the driver neither reads nor ships it."""
    artifact = IndexArtifact("/shared/index/v1", "v1", {"bytes": 145_000_000})
    handle = ship_index(None, SimpleNamespace(**caps), artifact, IndexConfig())
    assert (handle.strategy, handle.uri, handle.broadcast) == ("path", "/shared/index/v1", None)
