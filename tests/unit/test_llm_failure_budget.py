"""Failures that fail: the endpoint probe and the failure budget's one-line message (no Spark)."""

from __future__ import annotations

import socket

import pytest

from fi_spark.config.llm import LLMConfig
from fi_spark.errors import LLMFailureError
from fi_spark.section import ConfigError
from fi_spark.serving.probe import probe_endpoints, served_model
from fi_spark.stages.llm_stage import failure_message
from fi_spark_testkit.fault_server import FaultServer, ServerSettings


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was free a moment ago): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_probe_of_a_dead_endpoint_is_one_line_naming_it():
    """Nothing listening: LLMFailureError naming the URL, `connection refused` and what to check; nothing sent."""
    url = closed_port_url()
    with pytest.raises(LLMFailureError) as err:
        probe_endpoints(LLMConfig(endpoints=[url], model="m", connect_timeout_s=2))
    text = str(err.value)
    assert text.startswith(f"llm.endpoints: no endpoint answered GET /models ({url}: connection refused); check ")
    assert "\n" not in text and text.endswith("nothing was sent")


def test_model_unset_against_a_dead_endpoint_blames_the_endpoint():
    """With llm.model empty the fix is still the endpoint (it used to say `set llm.model`)."""
    url = closed_port_url()
    with pytest.raises(LLMFailureError, match=r"did not answer GET /models \(connection refused\)"):
        served_model(url, LLMConfig(endpoints=[url], connect_timeout_s=2))


def test_probe_passes_a_live_endpoint_and_a_dead_one_beside_it():
    """One endpoint answering is enough (the breaker routes around the dead one); an empty model is found."""
    with FaultServer() as srv:
        probe_endpoints(LLMConfig(endpoints=[closed_port_url(), srv.url], connect_timeout_s=2))
        assert served_model(srv.url, LLMConfig(endpoints=[srv.url])) == "test-model"


def test_model_unset_and_no_model_listed_says_what_to_set():
    """A server that answers but lists no model: a ConfigError saying to set llm.model."""
    with FaultServer(ServerSettings(model="")) as srv, pytest.raises(ConfigError, match=r"no model: set llm.model"):
        probe_endpoints(LLMConfig(endpoints=[srv.url]))


def test_failure_message_when_every_row_failed():
    """All 3 rows failed for endpoint reasons: one sentence naming the endpoint, the reasons and an example."""
    msg = failure_message(
        "genericize", {"llm_endpoints_unavailable": 2, "llm_retries_exhausted": 1}, 3, 0.5,
        ["http://u:secret@h:8000/v1"], "http://h:8000/v1: connection refused",
    )  # fmt: skip
    assert msg == (
        "genericize: all 3 rows failed at http://***@h:8000/v1 (llm_endpoints_unavailable=2, "
        "llm_retries_exhausted=1) (e.g. http://h:8000/v1: connection refused), over llm.max_failed_share=0.5; "
        "check that the server is up and reachable from the workers and not overloaded (llm.endpoints, "
        "llm.concurrency, llm.request_timeout_s); what was answered is stored and the same command sends only the "
        "failed rows again"
    )


def test_failure_budget_counts_only_endpoint_failures():
    """4 of 10 failed is within 0.5; 6 of 10 is not; budget cuts and content rejects never count."""
    assert failure_message("judge", {"llm_retries_exhausted": 4, "low_score": 6}, 10, 0.5, [], None) is None
    assert failure_message("judge", {"llm_budget_exhausted": 10}, 10, 0.5, [], None) is None
    assert failure_message("judge", {"llm_schema_invalid": 10}, 10, 0.5, [], None) is None
    msg = failure_message("judge", {"llm_bad_response": 6}, 10, 0.5, [], None)
    assert msg is not None and msg.startswith("judge: 6 of 10 rows failed at the LLM endpoint (llm_bad_response=6)")
    assert failure_message("judge", {"llm_bad_response": 10}, 10, 1.0, [], None) is None  # 1.0: never fail
