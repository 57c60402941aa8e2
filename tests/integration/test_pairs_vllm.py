"""instantiate and judge against the real local vLLM CPU server (SmolLM2-135M-Instruct).

A 135M model writes poor pairs: this test does not judge content. It checks the machinery with a real
model: every match ends as a pair or a reject with a known reason, every verdict is on the scale or
carries a reason, and a re-run is answered from the ledger with no HTTP call. Marked `llm` (the first
run on a machine installs and converts the model; see fi_spark.serving.local).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pairs_inputs import write_inputs  # a helper module beside this file
from pyspark.sql import functions as F

from fi_spark.config import load_config
from fi_spark.instantiate import instantiate
from fi_spark.instantiate.prompts import REJECT_REASONS
from fi_spark.judge import judge
from fi_spark.llm.types import FINAL_REASONS
from fi_spark.schemas import JUDGED, PAIR_REJECTS, PAIRS
from fi_spark.stages.base import StageContext

pytestmark = pytest.mark.llm

KNOWN = {*REJECT_REASONS, "missing_source", *(f"llm_{r}" for r in FINAL_REASONS)}


def test_pairs_with_the_real_model(embedded_engine, tmp_path: Path) -> None:
    """6 matches through the real model: full accounting, known reasons, scores on the scale, warm re-run."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    config = load_config("local", ["tracking.enabled=false", "instantiate.max_source_chars=1200"])
    out = tmp_path / "out"
    ctx = StageContext.for_output(embedded_engine, config, str(out), work_dir=str(out), log=logging.getLogger("t"))
    store = ctx.store
    write_inputs(ctx, tmp_path, n_docs=2)  # 6 matches: a few minutes on 2 CPU cores

    first = instantiate.run(ctx)
    assert first.rows_in == 6 and first.accounting_ok
    assert set(first.rejected) <= KNOWN, first.rejected
    assert store.count(PAIRS) + store.count(PAIR_REJECTS) == 6
    assert store.read(PAIR_REJECTS).where(F.col("detail").isNull()).count() == 0

    verdicts = judge.run(ctx)
    assert verdicts.rows_in == store.count(PAIRS) == store.count(JUDGED)
    bad = store.read(JUDGED).where(F.col("score").isNull() & F.col("error_reason").isNull()).count()
    assert bad == 0
    assert store.read(JUDGED).where((F.col("score") < 1) | (F.col("score") > 5)).count() == 0

    again = instantiate.run(ctx)
    assert again.rows_in == 0 and again.tables == {}
