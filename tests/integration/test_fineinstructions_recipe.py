"""The paper's recipe in one command: `fi-spark pipeline --profile fineinstructions` (run by `python -m bench.gpu_smoke`
--dry-run) against three scripted OpenAI-compatible servers, one per released contract -- the templatizer's JSON,
the instantiator's excerpt markers and `null`, Flow Judge's feedback and score (fi_spark_testkit.released).

One run (~30 s here); each test checks one property of it. The scripted answers (bench/gpu_smoke.py DRY_SCRIPT)
decide every row: two of three queries become templates, the volcano document is declined, the glacier pair
scores 2, the honeybee pair's verdict is garbled, the sourdough pair scores 5 and is the one pair kept.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from fi_spark.config import load_config
from fi_spark.schemas import DOCUMENTS, JUDGED, LLM_RESPONSES, PAIR_REJECTS, PAIRS, TEMPLATE_REJECTS, TEMPLATES
from fi_spark.tables import TableStore, resolve_format
from fi_spark_testkit.released import FLOW_JUDGE, INSTANTIATOR, TEMPLATIZER
from tests.conftest import REPO

SERVER_LINE = re.compile(r"^(\w+) server (http://127\.0\.0\.1:\d+/v1) was asked for model\(s\) (\{.*\})$", re.M)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    """`python -m bench.gpu_smoke --dry-run` once: (its output folder, its stdout)."""
    out = tmp_path_factory.mktemp("recipe")
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_smoke", "--dry-run", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done.stdout


@pytest.fixture(scope="module")
def store(recipe, _embedded) -> TableStore:
    config = load_config("local", ["tables.format=auto"])
    return TableStore(_embedded.spark, str(recipe[0] / "run"), resolve_format(config.tables, _embedded.caps))


def by_topic(store: TableStore, table, *columns: str) -> dict[str, tuple]:
    """Rows of a doc_id-keyed table by the document's topic (its `source_id`, e.g. 'glacier')."""
    docs = store.read(DOCUMENTS).select("doc_id", F.col("source_id").alias("topic"))
    rows = store.read(table).join(docs, "doc_id").select("topic", *columns).collect()
    return {r["topic"]: tuple(r[c] for c in columns) for r in rows}


def test_each_stage_reached_its_own_server_with_its_own_model(recipe, store):
    """Three servers, each asked only for its own model, and the ledger records that model and server per stage."""
    seen = {m.group(1): (m.group(2), json.loads(m.group(3).replace("'", '"'))) for m in SERVER_LINE.finditer(recipe[1])}
    assert {stage: models for stage, (_, models) in seen.items()} == {
        "genericize": {TEMPLATIZER: 3}, "instantiate": {INSTANTIATOR: 4}, "judge": {FLOW_JUDGE: 3},
    }  # fmt: skip
    assert len({url for url, _ in seen.values()}) == 3
    ledger = store.read(LLM_RESPONSES).groupBy("stage", "model", "endpoint").count().collect()
    assert sorted((r["stage"], r["model"], r["endpoint"], r["count"]) for r in ledger) == [
        ("genericize", TEMPLATIZER, seen["genericize"][0], 3),
        ("instantiate", INSTANTIATOR, seen["instantiate"][0], 4),
        ("judge", FLOW_JUDGE, seen["judge"][0], 3),
    ]


def test_the_templatizer_json_becomes_templates_and_its_text_a_reject(store):
    """Two queries answered with the templatizer's JSON are templates (its model kept); the third, text, a reject."""
    templates = sorted((r["template"], r["model"]) for r in store.read(TEMPLATES).collect())
    assert templates == [
        ("How can someone keep <fi>a living food culture</fi> alive during <fi>a period away from home</fi>?",
         TEMPLATIZER),
        ("What makes <fi>a slow natural phenomenon</fi> move the way it does?", TEMPLATIZER),
    ]  # fmt: skip
    assert [r["reason"] for r in store.read(TEMPLATE_REJECTS).collect()] == ["llm_unusable_answer"]


def test_the_instantiator_excerpts_expand_and_its_null_declines(store):
    """Excerpt markers expand to the document's first sentence, verbatim; `null` is the volcano's reject."""
    pairs = by_topic(store, PAIRS, "answer", "grounding", "model")
    assert pairs == {
        "sourdough": ("A sourdough starter is a living culture of wild yeast and lactic acid bacteria kept in flour "
                      "and water.", 1.0, INSTANTIATOR),
        "glacier": ("A glacier moves downhill because the weight of its ice makes the lower layers deform slowly "
                    "under pressure.", 1.0, INSTANTIATOR),
        "honeybee": ("A honeybee worker performs a waggle dance inside the hive to tell her sisters where flowers "
                     "are found.", 1.0, INSTANTIATOR),
    }  # fmt: skip
    assert by_topic(store, PAIR_REJECTS, "reason") == {"volcano": ("incompatible",)}


def test_flow_judge_feedback_and_score_are_stored_and_garbled_output_is_a_reason(store):
    """Flow Judge's <feedback> is the rationale and <score> the score; text without tags is judge_unparseable."""
    judged = store.read(JUDGED).join(store.read(PAIRS).select("pair_id", "doc_id"), "pair_id")
    docs = store.read(DOCUMENTS).select("doc_id", F.col("source_id").alias("topic"))
    rows = judged.join(docs, "doc_id").collect()
    assert {r["topic"]: (r["score"], r["rationale"], r["error_reason"], r["model"]) for r in rows} == {
        "sourdough": (5, "Scripted feedback: score 5.", None, FLOW_JUDGE),
        "glacier": (2, "Scripted feedback: score 2.", None, FLOW_JUDGE),
        "honeybee": (None, None, "judge_unparseable", FLOW_JUDGE),
    }


def test_the_card_and_the_smoke_summary_name_each_stages_model(recipe):
    """The dataset card has one row per LLM stage with its model; the smoke summary counts the one kept pair."""
    card = (recipe[0] / "run" / "export" / "README.md").read_text(encoding="utf-8")
    assert f"| genericize | {TEMPLATIZER} |" in card and f"| instantiate | {INSTANTIATOR} |" in card
    assert f"| judge | {FLOW_JUDGE} | Apache-2.0 (flowaicom/Flow-Judge-v0.1) |" in card
    summary = json.loads((recipe[0] / "summary.json").read_text(encoding="utf-8"))
    assert summary["kept_pairs"] == 1
    assert {s: v["model"] for s, v in summary["stages"].items()} == {
        "genericize": TEMPLATIZER, "instantiate": INSTANTIATOR, "judge": FLOW_JUDGE,
    }  # fmt: skip
    assert ["pairs", "score >= 4", 1] in summary["funnel"]
    assert all(v["requests"] > 0 for v in summary["stages"].values())
    assert "GPU-seconds per kept pair:" in recipe[1]
