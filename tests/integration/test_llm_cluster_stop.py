"""A cluster never starts a CPU server on the driver: with engine.mode cluster or connect and no endpoints for an
LLM stage, the stage (and a pipeline that includes it) stops at once with one sentence (issue #19 item 7); and
the other check an LLM stage makes when it starts, judge.flow's 1-5 scale."""

from __future__ import annotations

from unittest import mock

import pytest

from fi_spark.config import ConfigError
from fi_spark.instantiate import instantiate
from fi_spark.judge import judge
from fi_spark.run.pipeline import run_pipeline
from fi_spark.run.tracking import Tracker
from fi_spark.stages.registry import PipelineInputs

NO_SERVER = "fi_spark.serving.local.shared_server"


def _no_local_server(*_args, **_kwargs):
    raise AssertionError("the local vLLM server was asked for on a cluster")


@pytest.mark.parametrize("mode", ["cluster", "connect"])
def test_an_llm_stage_on_a_cluster_without_endpoints_stops_before_reading(embedded_engine, make_ctx, mode):
    """The stage object refuses at construction: no table is read (none exists here), no server is started."""
    ctx = make_ctx(embedded_engine, [f"engine.mode={mode}", "engine.connect_url=sc://spark:15002"])
    with mock.patch(NO_SERVER, _no_local_server), pytest.raises(ConfigError) as err:
        judge.run(ctx)
    assert str(err.value).startswith(f"judge: engine.mode={mode} runs LLM requests on executors, which cannot reach")
    assert "judge.llm.endpoints (this stage only)." in str(err.value)


def test_a_pipeline_on_a_cluster_stops_before_its_first_stage(embedded_engine, make_ctx):
    """The pipeline checks its LLM stages first: the sentence names judge (the stage without servers), not
    prepare_corpus's missing --documents, which would be the error had any stage run before the check."""
    ctx = make_ctx(embedded_engine, ["engine.mode=cluster", "instantiate.llm.endpoints=[http://gpu:8000/v1]"])
    with mock.patch(NO_SERVER, _no_local_server), pytest.raises(ConfigError, match="^judge: engine.mode=cluster"):
        run_pipeline(ctx, Tracker(ctx.config, ctx.output), PipelineInputs(), only=["prepare_corpus", "instantiate",
                                                                                  "judge"])  # fmt: skip
    assert not ctx.store.exists(instantiate.TABLES.writes[0])


def test_flow_judge_on_another_scale_is_refused(embedded_engine, make_ctx):
    """judge.flow's rubric is Flow Judge's 1-5 Likert scale: another scale is one error at the judge's start
    (its setup, the first step of its run, before any table is read)."""
    ctx = make_ctx(embedded_engine, ["judge.prompt=judge.flow", "judge.scale_max=10", "judge.threshold=8"])
    with pytest.raises(ConfigError, match="Flow Judge's 1-5 Likert rubric: set judge.scale_min=1 and"):
        judge.Judge(ctx).run()
