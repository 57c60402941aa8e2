"""instantiate -> judge -> export -> report on a handful of rows, against a scripted OpenAI-compatible server.

The server is the LLM layer's test server with scripted answers (a grounded answer for most documents,
an invented one for the Danube document, leftover <fi> tags for one template, varied judge scores), so
every check and reject reason is exercised with known outcomes. One module-scoped run; each test
checks one property of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pairs_inputs import DOCS, write_inputs  # a helper module beside this file
from pyspark.sql import functions as F

from fi_spark.config import load_config
from fi_spark.errors import LLMFailureError
from fi_spark.export import export
from fi_spark.export.lineage import final_pairs
from fi_spark.ingest import prepare_corpus
from fi_spark.instantiate import instantiate
from fi_spark.judge import judge
from fi_spark.match.candidates import final_budget_keep
from fi_spark.report import report as report_stage
from fi_spark.run.pipeline import layout
from fi_spark.schemas import CHUNKS, DOCUMENTS, JUDGED, LLM_RESPONSES, MATCHES, PAIR_REJECTS, PAIRS
from fi_spark.stages.base import StageContext
from fi_spark.text.words import word_tokens
from fi_spark_testkit.fault_server import FaultServer


def judge_score(instruction: str) -> int:
    """The scripted judge's score: 1..5 from a hash of the instruction."""
    return hashlib.sha256(instruction.encode()).digest()[0] % 5 + 1


class ScriptedServer(FaultServer):
    """The LLM test server, answering instantiate and judge requests from the prompt text."""

    def _answer(self, chat: bool, req: dict[str, Any], rid: str, bad: bool) -> dict[str, Any]:
        out = super()._answer(chat, req, rid, bad)
        props = (((req.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}).get("properties")
        choice = (req.get("structured_outputs") or {}).get("choice")  # the one-token judge (vLLM flavor)
        if bad or not (choice or (props and ({"instruction", "answer"} <= set(props) or "score" in props))):
            return out  # not instantiate or judge (e.g. genericize): the base server's minimal schema instance
        last = str(req["messages"][-1]["content"])
        if props and "instruction" in props and "answer" in props:
            content = self._instantiate(last)
        else:
            instruction = re.search(r"INSTRUCTION: (.*)", last).group(1)  # type: ignore[union-attr]
            score = judge_score(instruction)
            content = score if choice else {"rationale": "scripted", "score": score}
            if req.get("logprobs"):  # the score token with two alternatives: p(score) = 0.75, p(other) = 0.25
                other = str(score % 5 + 1)
                top = [{"token": str(score), "logprob": math.log(0.75)}, {"token": other, "logprob": math.log(0.25)}]
                out["choices"][0]["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        out["choices"][0]["message"]["content"] = json.dumps(content)
        return out

    @staticmethod
    def _instantiate(prompt: str) -> dict[str, Any]:
        template = re.search(r"TEMPLATE: (.*)", prompt).group(1)  # type: ignore[union-attr]
        document = prompt.split('"""')[1].strip()
        words = document.split()
        instruction = template if "KEEP_TAGS" in template else re.sub(r"<fi>.*?</fi>", " ".join(words[:2]), template)
        if "Danube" in document:
            answer = "Rivers are long and wet, and nobody really knows why they keep on flowing."
        else:
            answer = document.split(". ")[0] + "."
        return {"slots": [{"slot": "x", "value": " ".join(words[:2])}], "instruction": instruction, "answer": answer}


@pytest.fixture(scope="module")
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pairs")


def make_ctx(engine, output: Path, server: ScriptedServer, overrides: list[str] = ()) -> StageContext:
    config = load_config(
        "local",
        [
            "tracking.enabled=false",
            f"llm.endpoints=[{server.url}]",
            "llm.model=test-model",
            "export.rows_per_shard=2",
            "export.validation_fraction=0.3",
            "export.licenses={documents.jsonl: CC BY-SA 3.0}",
            "match.token_budget=null",  # the final view's budget has its own test below
            "instantiate.prompt=instantiate.v1",
            "templates.prompt=genericize.v1",
            "templates.extractive_only=false",  # what ScriptedServer answers; judge.v4 has its own test below
            "judge.prompt=judge.v2",
            *overrides,
        ],
    )
    return StageContext.for_output(engine, config, str(output), work_dir=str(output), log=logging.getLogger("test"))


@pytest.fixture(scope="module")
def ran(_embedded, run_dir, server):
    """prepare_corpus -> (templates, matches written here) -> instantiate -> judge -> export, once."""
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # as the function-scoped embedded_engine fixture does
    ctx = make_ctx(_embedded, run_dir, server)
    write_inputs(ctx, run_dir)
    results = {
        "instantiate": instantiate.run(ctx),
        "judge": judge.run(ctx),
        "export": export.run(ctx, layout()),
    }
    calls = server.snapshot()["requests"]
    return ctx, results, calls


def test_instantiate_accounts_for_every_match_with_reasons(ran):
    """12 matches -> 6 pairs + 4 unfilled_slots (t-broken) + 2 ungrounded (the Danube answers), with details."""
    ctx, results, _ = ran
    res = results["instantiate"]
    assert (res.rows_in, res.rows_out) == (12, 6)
    assert res.rejected == {"unfilled_slots": 4, "ungrounded": 2}
    rejects = {(r["template_id"], r["reason"]) for r in ctx.store.read(PAIR_REJECTS).collect()}
    assert rejects == {("t-broken", "unfilled_slots")} | {("t-why", "ungrounded"), ("t-what", "ungrounded")}
    ungrounded = ctx.store.read(PAIR_REJECTS).where(F.col("reason") == "ungrounded").first()
    assert ungrounded["grounding"] == 0.0 and ungrounded["detail"].startswith("grounding 0.000 < 0.80")
    pairs = ctx.store.read(PAIRS)
    assert pairs.where(F.col("grounding") < 0.8).count() == 0
    assert pairs.where(F.col("instruction").contains("<fi>")).count() == 0
    assert {r["prompt_version"][:15] for r in pairs.collect()} == {"instantiate.v1+"}
    assert {r["model"] for r in pairs.collect()} == {"test-model"}


def test_judge_sends_one_score_token_and_stores_the_expected_score(ran):
    """The default judge asks for a choice with logprobs; expected_score = 0.75 x score + 0.25 x the other."""
    ctx, _, _ = ran
    rows = ctx.store.read(JUDGED).collect()
    assert rows and all(r["rationale"] is None and r["error_reason"] is None for r in rows)
    for r in rows:
        assert r["expected_score"] == pytest.approx(0.75 * r["score"] + 0.25 * (r["score"] % 5 + 1))
    bodies = ctx.store.read(LLM_RESPONSES).where(F.col("stage") == "judge").collect()
    assert all(json.loads(b["logprobs"])[0][0] == b["content"] for b in bodies)


def test_final_view_applies_the_token_budget(ran, embedded_engine, run_dir, server):
    """With match.token_budget the final view keeps, per document, the best-judged pairs that fit its tokens."""
    ctx, _, _ = ran
    loose = make_ctx(embedded_engine, run_dir, server, ["judge.threshold=1"])
    everything = {r["pair_id"] for r in final_pairs(loose).collect()}
    assert len(everything) == 6
    tiny = make_ctx(embedded_engine, run_dir, server, ["judge.threshold=1", "match.token_budget=0.001"])
    assert final_pairs(tiny).count() == 0
    budgeted = make_ctx(embedded_engine, run_dir, server, ["judge.threshold=1", "match.token_budget=0.5"])
    rows = final_pairs(loose).join(ctx.store.read(DOCUMENTS).select("doc_id", "n_words"), "doc_id").toPandas()
    expected = set()
    for _, doc in rows.groupby("doc_id"):
        tokens = [len(word_tokens(i)) + a for i, a in zip(doc["instruction"], doc["answer_tokens"], strict=True)]
        frame = doc.assign(tokens=tokens, expected_score=doc["judge_expected_score"])
        expected |= set(final_budget_keep(frame, int(doc["n_words"].iloc[0]), 0.5))
    assert {r["pair_id"] for r in final_pairs(budgeted).collect()} == expected and expected < everything


def test_judge_threshold_change_needs_no_new_requests(ran, embedded_engine, run_dir, server):
    """Judged rows keep scores; another threshold changes the final set, and re-running judge sends nothing."""
    ctx, results, calls = ran
    scores = [r["score"] for r in ctx.store.read(JUDGED).collect()]
    assert len(scores) == 6 and all(1 <= s <= 5 for s in scores)
    expected = {t: sum(s >= t for s in scores) for t in (1, 3, 4, 5)}
    assert results["judge"].rows_out == sum(s >= ctx.config.judge.threshold for s in scores)  # the profile's cut
    for threshold, n in expected.items():
        strict = make_ctx(embedded_engine, run_dir, server, [f"judge.threshold={threshold}"])
        assert final_pairs(strict).count() == n
        again = judge.run(strict)
        assert (again.rows_in, again.tables) == (0, {})
    assert server.snapshot()["requests"] == calls


def test_rerun_makes_no_llm_calls_and_adds_no_rows(ran, embedded_engine, run_dir, server):
    """instantiate and judge again: zero HTTP requests, zero rows added to any table."""
    _, _, calls = ran
    ctx = make_ctx(embedded_engine, run_dir, server)
    before = {spec.name: ctx.store.count(spec) for spec in (PAIRS, PAIR_REJECTS, JUDGED, LLM_RESPONSES)}
    assert instantiate.run(ctx).rows_in == 0
    assert judge.run(ctx).rows_in == 0
    after = {spec.name: ctx.store.count(spec) for spec in (PAIRS, PAIR_REJECTS, JUDGED, LLM_RESPONSES)}
    assert after == before
    assert server.snapshot()["requests"] == calls


def _word_lift(instruction: str, answer: str) -> float:
    """The lift fi_spark_testkit.scripted's word model gives: answer words seen in the request cost -1, others -2."""
    words = answer.split()

    def mean(request: str) -> float:
        seen = {w.casefold() for w in request.split()}
        return sum(-1.0 if w.casefold() in seen else -2.0 for w in words) / len(words)

    return mean(instruction) - mean("Say something.")


def test_likelihood_judge_sends_two_scoring_requests_per_pair(ran, embedded_engine, server, tmp_path):
    """judge.v4: each pair's answer is scored after its instruction and after the neutral request (one request
    per distinct answer), the two answers are paired up again, and the lift maps onto 1-5 by the edges."""
    from bisect import bisect_right

    ctx = make_ctx(embedded_engine, tmp_path, server, ["judge.prompt=judge.v4"])
    write_inputs(ctx, tmp_path)
    instantiate.run(ctx)
    pairs = ctx.store.read(PAIRS).select("pair_id", "instruction", "answer").collect()
    before = server.snapshot()["requests"]
    result = judge.run(ctx)
    sent = server.snapshot()["requests"] - before
    assert result.rows_in == len(pairs) > 0
    assert sent == len(pairs) + len({p["answer"] for p in pairs})  # the neutral scoring is shared by an answer
    judged = {r["pair_id"]: r for r in ctx.store.read(JUDGED).collect()}
    edges = [0.0, 0.1, 0.2, 0.4]
    for p in pairs:
        lift = _word_lift(p["instruction"], p["answer"])
        row = judged[p["pair_id"]]
        assert (row["score"], row["error_reason"]) == (min(5, 1 + bisect_right(edges, lift)), None), (p, lift)
        assert row["rationale"].startswith(f"lift {lift:+.3f}") and row["prompt_version"].startswith("judge.v4")
    assert judge.run(ctx).rows_in == 0 and server.snapshot()["requests"] - before == sent  # a re-run sends nothing


def test_export_round_trip(ran, run_dir):
    """Parquet and JSONL shards read back with the chat schema, the final rows, split and stats agree."""
    ctx, results, _ = ran
    final_ids = {r["pair_id"] for r in final_pairs(ctx).select("pair_id").collect()}
    data = run_dir / "export" / "data"
    parquet = sorted(data.glob("*.parquet"))
    jsonl = sorted(data.glob("*.jsonl"))
    assert [p.stem for p in parquet] == [p.stem for p in jsonl]
    table = pq.read_table([str(p) for p in parquet]) if parquet else None
    assert table is not None and set(table.column("id").to_pylist()) == final_ids
    assert table.schema.field("messages").type.value_type.names == ["role", "content"]
    lines = [json.loads(line) for p in jsonl for line in p.read_text().splitlines()]
    assert {row["id"] for row in lines} == final_ids and len(lines) == len(final_ids)
    assert all([m["role"] for m in row["messages"]] == ["user", "assistant"] for row in lines)
    stats = json.loads((run_dir / "export" / "stats.json").read_text())
    assert stats["rows"] == len(final_ids) == results["export"].rows_out
    assert sum(s["rows"] for s in stats["shards"] if s["format"] == "parquet") == len(final_ids)
    for s in stats["shards"]:
        assert (run_dir / "export" / s["file"]).stat().st_size == s["bytes"]
        assert s["tokens"] > 0 and re.match(rf"data/{s['split']}-\d{{5}}-of-\d{{5}}\.(parquet|jsonl)$", s["file"])
    card = (run_dir / "export" / "README.md").read_text()
    assert f"{len(final_ids):,} instruction/answer pairs" in card and "CC BY-SA 3.0" in card
    assert "## Generation cost" in card and f"the LLM requests behind these {len(final_ids):,} pairs" in card


def test_lineage_is_complete(ran):
    """Every final pair joins to its document, chunk, template, match score, grounding and verdict (the
    rationale is null by default: the one-token judge)."""
    ctx, _, _ = ran
    final = final_pairs(ctx)
    n = final.count()
    assert n > 0
    docs = ctx.store.read(DOCUMENTS).select("doc_id")
    chunks = ctx.store.read(CHUNKS).select("chunk_id")
    assert final.join(docs, "doc_id").count() == n
    assert final.join(chunks, "chunk_id").count() == n
    required = [
        "template", "source_query_ids", "template_origin", "match_score", "match_rank", "grounding", "judge_score",
        "judge_expected_score", "instantiate_model", "judge_model", "instantiate_prompt", "judge_prompt",
        "dedup_cluster", "source",
    ]  # fmt: skip
    for column in required:
        assert final.where(F.col(column).isNull()).count() == 0, column


def test_report_shows_all_stages(ran, embedded_engine, run_dir, server):
    """The report finds every table, draws the pair plots and its funnel matches the tables."""
    ctx = make_ctx(embedded_engine, run_dir, server)
    result = report_stage.run(ctx, layout())
    folder = Path(result.artifacts["report"])
    assert {"report.html", "grounding.png", "judge.png", "llm.png", "funnel.png"} <= {p.name for p in folder.iterdir()}
    assert result.metrics["funnel.pairs.candidates_matches"] == 12
    assert result.metrics["funnel.pairs.instantiated"] == 12
    assert result.metrics["funnel.pairs.passed_checks"] == 6
    page = (run_dir / "report" / "report.html").read_text()
    assert "ungrounded" in page and "unfilled_slots" in page
    assert "cost.png" in {p.name for p in folder.iterdir()}  # cost per kept pair by stage (fi_spark.cost)
    ledger = ctx.store.read(LLM_RESPONSES).agg(F.sum("completion_tokens"), F.sum("server_ms")).first()
    assert result.metrics["cost.kept_pairs"] == final_pairs(ctx).count() > 0
    assert result.metrics["cost.total.completion_tokens"] == ledger[0] > 0
    assert result.metrics["cost.total.server_seconds"] == pytest.approx(ledger[1] / 1000)
    assert result.metrics["cost.total.server_seconds_per_kept_pair"] == pytest.approx(
        ledger[1] / 1000 / result.metrics["cost.kept_pairs"]
    )


def test_decontamination_rejects_overlapping_pairs(embedded_engine, server, tmp_path):
    """With an eval set sharing a 13-gram with the Eiffel answer, those pairs become `contaminated` rejects."""
    evals = tmp_path / "eval.jsonl"
    evals.write_text(
        json.dumps({"question": "Where is the Eiffel Tower?", "context": DOCS[1][1]}) + "\n"
        + json.dumps({"question": "Unrelated question about astronomy and the moons of Jupiter and Saturn?"}) + "\n"
    )  # fmt: skip
    ctx = make_ctx(embedded_engine, tmp_path / "out", server, [f"decontam.eval_paths=[{evals}]"])
    write_inputs(ctx, tmp_path)
    result = instantiate.run(ctx)
    assert result.rejected == {"unfilled_slots": 4, "ungrounded": 2, "contaminated": 2}
    assert result.rows_out == 4
    rejects = ctx.store.read(PAIR_REJECTS).where(F.col("reason") == "contaminated").collect()
    assert {r["doc_id"] for r in rejects} == {"wiki-2"}
    assert all(r["detail"].startswith("instruction shares 13-gram") or "answer shares 13-gram" in r["detail"]
               for r in rejects)  # fmt: skip
    assert all(str(evals) in r["detail"] for r in rejects)


@pytest.mark.slow
def test_chain_on_classic_spark(local_engine, server, tmp_path):
    """The same chain on classic PySpark (Parquet tables): same accounting, shards read back in full."""
    ctx = make_ctx(local_engine, tmp_path / "out", server)
    write_inputs(ctx, tmp_path)
    inst = instantiate.run(ctx)
    assert (inst.rows_in, inst.rows_out, inst.rejected) == (12, 6, {"unfilled_slots": 4, "ungrounded": 2})
    judged = judge.run(ctx)
    assert judged.rows_in == 6
    exported = export.run(ctx, layout())
    assert exported.rows_out == judged.rows_out == final_pairs(ctx).count()
    files = sorted((tmp_path / "out" / "export" / "data").glob("*.parquet"))
    assert pq.read_table([str(f) for f in files]).num_rows == exported.rows_out


def test_llm_failures_transient_retried_final_stored(embedded_engine, tmp_path):
    """5xx on every attempt: counted, not stored, and answered next run; a 400 is a stored reject, never resent."""
    from fi_spark_testkit.fault_server import ServerSettings

    flaky_out, refused_out = tmp_path / "flaky", tmp_path / "refused"
    with ScriptedServer(ServerSettings(fault_rate=1.0, fault_kinds=("500",))) as down:
        ctx = make_ctx(embedded_engine, flaky_out, down, ["llm.max_attempts=1"])
        write_inputs(ctx, tmp_path)
        with pytest.raises(LLMFailureError) as err:  # every row failed: the stage fails after storing what it can
            instantiate.run(ctx)
    first = err.value.result
    assert first.rejected == {"llm_retries_exhausted": 12} and first.rows_out == 0
    assert ctx.store.count(PAIRS) == ctx.store.count(PAIR_REJECTS) == 0
    with ScriptedServer() as up:
        second = instantiate.run(make_ctx(embedded_engine, flaky_out, up))
    assert (second.rows_in, second.rows_out, second.rejected) == (12, 6, {"unfilled_slots": 4, "ungrounded": 2})

    with ScriptedServer(ServerSettings(fault_rate=1.0, fault_kinds=("400",))) as refusing:
        ctx = make_ctx(embedded_engine, refused_out, refusing)
        (tmp_path / "in2").mkdir()
        write_inputs(ctx, tmp_path / "in2")
        refused = instantiate.run(ctx)
    assert refused.rejected == {"llm_http_400": 12}
    rows = ctx.store.read(PAIR_REJECTS).collect()
    assert len(rows) == 12 and all(r["reason"] == "llm_http_400" and r["detail"] for r in rows)
    with ScriptedServer() as up:
        assert instantiate.run(make_ctx(embedded_engine, refused_out, up)).rows_in == 0
        assert up.snapshot()["requests"] == 0


def test_export_with_no_final_pairs_writes_an_honest_card(ran, embedded_engine, tmp_path, server):
    """When no pair reaches the threshold, export writes no shards, and a card and stats saying 0."""
    ctx, _, _ = ran
    empty = make_ctx(
        embedded_engine, Path(ctx.output), server,
        ["judge.scale_max=10", "judge.threshold=10", f"export.location={tmp_path / 'empty'}"],
    )  # fmt: skip
    result = export.run(empty, layout())
    assert (result.rows_in, result.rows_out) == (0, 0)
    assert json.loads((tmp_path / "empty" / "stats.json").read_text())["rows"] == 0
    assert "0 instruction/answer pairs" in (tmp_path / "empty" / "README.md").read_text()
    assert not list((tmp_path / "empty").glob("data/*"))


def test_pairs_store_the_span_of_their_source(ran):
    """Each pair keeps (char_start, char_end) of the chunk it was made from: judge and export need no matches."""
    ctx, _, _ = ran
    spans = ctx.store.read(CHUNKS).select("chunk_id", F.col("char_start").alias("c0"), F.col("char_end").alias("c1"))
    pairs = ctx.store.read(PAIRS).join(spans, "chunk_id")
    assert pairs.count() == 6
    assert pairs.where((F.col("char_start") != F.col("c0")) | (F.col("char_end") != F.col("c1"))).count() == 0


def test_judge_every_request_failing_is_counted_not_a_crash(ran, embedded_engine, tmp_path):
    """HTTP 500 until retries are exhausted for every judge request: each pair is counted as
    llm_retries_exhausted, no verdict is stored, the stage fails (LLMFailureError with those counts), and the
    next run judges them all."""
    from fi_spark_testkit.fault_server import ServerSettings

    ctx, _, _ = ran
    out = tmp_path / "judge-down"
    shutil.copytree(Path(ctx.output) / "tables" / "pairs", out / "tables" / "pairs")
    for name in ("documents", "chunks"):
        shutil.copytree(Path(ctx.output) / "tables" / name, out / "tables" / name)
    with ScriptedServer(ServerSettings(fault_rate=1.0, fault_kinds=("500",))) as down:
        with pytest.raises(LLMFailureError) as err:
            judge.run(make_ctx(embedded_engine, out, down, ["llm.max_attempts=2"]))
    failed = err.value.result
    assert (failed.rows_in, failed.rows_out, failed.rejected) == (6, 0, {"llm_retries_exhausted": 6})
    assert failed.tables == {"judged": 0}
    with ScriptedServer() as up:
        again = judge.run(make_ctx(embedded_engine, out, up))
    assert again.rows_in == 6 and again.tables == {"judged": 6}


def test_instantiate_with_nothing_to_send(embedded_engine, server, tmp_path):
    """Matches whose document is gone: no request at all, every row a stored missing_source reject; then
    nothing is pending."""
    ctx = make_ctx(embedded_engine, tmp_path / "out", server)
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "wiki-1", "text": DOCS[0][1]}) + "\n")
    prepare_corpus.run(ctx, str(docs))
    ghost = [("ghost", "t-why", None, None, None, 0, 0.5, 0.9, 1, "test-index")]
    ctx.store.write(ctx.spark.createDataFrame(ghost, MATCHES.schema), MATCHES)
    before = server.snapshot()["requests"]
    result = instantiate.run(ctx)
    assert (result.rows_in, result.rows_out, result.rejected) == (1, 0, {"missing_source": 1})
    assert result.tables == {"pairs": 0, "pair_rejects": 1}
    assert instantiate.run(ctx).rows_in == 0
    assert server.snapshot()["requests"] == before


def test_registry_refuses_a_stage_whose_input_is_missing(embedded_engine, server, tmp_path):
    """Through the registry, judge on an empty output fails with one sentence naming the stage to run first."""
    from fi_spark.run.pipeline import run_spec
    from fi_spark.stages.base import MissingInputError
    from fi_spark.stages.registry import stage

    ctx = make_ctx(embedded_engine, tmp_path / "empty", server)
    with pytest.raises(MissingInputError, match="judge needs the `pairs` table, which does not exist: run instantiate"):
        run_spec(stage("judge"), ctx)
