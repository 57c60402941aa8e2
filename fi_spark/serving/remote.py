"""The configured `llm.endpoints` as an InferenceServer: one or more OpenAI-compatible servers fi-spark does not
run, so it only probes them (fi_spark.serving.probe) and never restarts them."""

from __future__ import annotations

import logging

from fi_spark.config.llm import LLMConfig
from fi_spark.redact import redact_url
from fi_spark.serving.probe import Unanswered, list_models, served_model

log = logging.getLogger("fi_spark")


class RemoteEndpoints:
    """`llm.endpoints`; `model` is `llm.model`, else the first model the first endpoint lists (asked once)."""

    capacity: int | None = None  # the client's own `llm.concurrency` bounds what is in flight

    def __init__(self, cfg: LLMConfig) -> None:
        if not cfg.endpoints:
            raise ValueError("RemoteEndpoints needs llm.endpoints; with none, use fi_spark.serving.local.LocalVLLM")
        self.cfg = cfg
        self._model = cfg.model

    def endpoints(self) -> list[str]:
        return list(self.cfg.endpoints)

    @property
    def model(self) -> str:
        if not self._model:  # one line when it is dead or lists none
            self._model = served_model(self.cfg.endpoints[0], self.cfg)
        return self._model

    def heal(self, reason: str, logger: logging.Logger | None = None) -> bool:
        """Nothing to restart: say which endpoints answer GET /models now, and never ask for a resend."""
        for url in self.cfg.endpoints:
            try:
                list_models(url, self.cfg)
            except Unanswered as exc:
                (logger or log).warning("llm endpoint %s does not answer (%s; %s)", redact_url(url), reason, exc)
        return False
