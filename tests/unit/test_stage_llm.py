"""Per-stage LLM settings (`templates.llm`, `instantiate.llm`, `judge.llm`) and the cluster-without-servers stop."""

from __future__ import annotations

import pytest

from fi_spark.config import ConfigError, load_config
from fi_spark.stages.base import require_llm_servers


def test_fineinstructions_profile_names_three_models_on_three_servers():
    """The recipe's profile resolves one model and one server per LLM stage (issue #19 item 1)."""
    config = load_config("fineinstructions")
    got = {
        s: (config.stage_llm(s).model, config.stage_llm(s).endpoints) for s in ("genericize", "instantiate", "judge")
    }
    assert got == {
        "genericize": ("fineinstructions/query_templatizer", ["http://localhost:8001/v1"]),
        "instantiate": ("fineinstructions/template_instantiator", ["http://localhost:8000/v1"]),
        "judge": ("flowaicom/Flow-Judge-v0.1", ["http://localhost:8002/v1"]),
    }
    flat = config.to_flat_dict()
    assert flat["resolved_llm.judge.model"] == "flowaicom/Flow-Judge-v0.1"
    assert flat["resolved_llm.genericize.max_tokens"] == 512 and flat["resolved_llm.instantiate.max_tokens"] == 1024


def test_a_stage_falls_back_to_llm_for_every_key_it_does_not_set():
    """Unset keys come from llm.*; the section's older max_tokens sits between; the stage's own llm wins."""
    config = load_config(
        "local",
        ["llm.model=base", "llm.endpoints=[http://a/v1]", "llm.top_p=0.9", "judge.llm.model=judge-model",
         "judge.max_tokens=100", "judge.llm.max_tokens=700", "instantiate.max_tokens=333", "templates.llm.seed=7"],
    )  # fmt: skip
    judge, inst, gen = (config.stage_llm(s) for s in ("judge", "instantiate", "genericize"))
    assert (judge.model, judge.max_tokens, judge.top_p, judge.endpoints) == ("judge-model", 700, 0.9, ["http://a/v1"])
    assert (inst.model, inst.max_tokens, inst.seed) == ("base", 333, 0)
    assert (gen.model, gen.max_tokens, gen.seed) == ("base", 256, 7)  # templates.max_tokens 256 in local.yaml


def test_an_unknown_stage_llm_key_is_one_error_naming_it():
    """A typo under judge.llm fails at load, naming the section, the key and the keys allowed."""
    with pytest.raises(ConfigError) as err:
        load_config("local", ["judge.llm.modle=x"])
    assert "judge.llm" in str(err.value) and "unknown key(s) modle" in str(err.value) and "endpoints" in str(err.value)
    with pytest.raises(ConfigError, match="unknown key\\(s\\) local"):
        load_config("local", ["judge.llm.local={model: gemma3-270m}"])  # one local server for every stage


def test_a_bad_stage_llm_value_is_one_error_naming_the_key():
    """A value out of range under a stage's llm is checked by LLMConfig's own rules and named."""
    with pytest.raises(ConfigError, match="judge.llm: max_tokens: Input should be greater than or equal to 1"):
        load_config("local", ["judge.llm.max_tokens=0"])


@pytest.mark.parametrize("mode", ["cluster", "connect"])
def test_a_cluster_without_servers_stops_with_one_sentence(mode):
    """cluster/connect with no endpoints for a stage: one sentence on how to point it at servers (item 7)."""
    config = load_config("local", [f"engine.mode={mode}", "engine.connect_url=sc://h:15002",
                                   "judge.llm.endpoints=[http://gpu:8002/v1]"])  # fmt: skip
    require_llm_servers(config, "judge")  # its own server: fine
    with pytest.raises(ConfigError) as err:
        require_llm_servers(config, "instantiate")
    message = str(err.value)
    assert message.startswith(f"instantiate: engine.mode={mode} runs LLM requests on executors")
    assert "llm.endpoints=" in message and "instantiate.llm.endpoints" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_local_modes_may_use_the_local_server():
    """embedded and local engines run on this machine: no endpoints means the local server, no error."""
    for mode in ("embedded", "local"):
        require_llm_servers(load_config("local", [f"engine.mode={mode}"]), "genericize")


def test_mlflow_params_name_each_stages_model():
    """What tracking logs as params (redacted flat config) holds the resolved model of every LLM stage."""
    from fi_spark.redact import redact_config

    params = redact_config(load_config("fineinstructions").to_flat_dict())
    assert {k: v for k, v in params.items() if k.startswith("resolved_llm.") and k.endswith(".model")} == {
        "resolved_llm.genericize.model": "fineinstructions/query_templatizer",
        "resolved_llm.instantiate.model": "fineinstructions/template_instantiator",
        "resolved_llm.judge.model": "flowaicom/Flow-Judge-v0.1",
    }
