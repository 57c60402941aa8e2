"""The LLM stages' lifecycle (fi_spark.stages.llm_stage.LLMStage.run): setup, the loop, teardown -- also on failure."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from fi_spark.stages.llm_stage import LLMStage


class Recording(LLMStage):
    name = "recording"

    def __init__(self, fail: bool) -> None:
        env = SimpleNamespace(cfg=SimpleNamespace(max_failed_share=1.0))
        ctx: Any = SimpleNamespace(llm_env=lambda stage: env)
        super().__init__(ctx)
        self.fail = fail
        self.calls: list[str] = []

    def setup(self) -> None:
        self.calls.append("setup")

    def teardown(self) -> None:
        self.calls.append("teardown")

    def _loop(self) -> Any:
        self.calls.append("loop")
        if self.fail:
            raise RuntimeError("the loop failed")
        return "result"


def test_setup_is_not_run_by_the_constructor() -> None:
    """Building a stage only checks its servers (llm_env); setup belongs to the run."""
    assert Recording(fail=False).calls == []


def test_run_is_setup_loop_teardown() -> None:
    stage = Recording(fail=False)
    assert stage.run() == "result"
    assert stage.calls == ["setup", "loop", "teardown"]


def test_teardown_runs_when_the_loop_fails() -> None:
    stage = Recording(fail=True)
    with pytest.raises(RuntimeError, match="the loop failed"):
        stage.run()
    assert stage.calls == ["setup", "loop", "teardown"]
