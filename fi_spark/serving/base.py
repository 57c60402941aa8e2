"""The one interface between the LLM client (fi_spark.llm) and the servers it sends to.

`fi_spark.llm.complete` sees only this: where to send (`endpoints()`), what model name requests carry (`model`),
how many requests the server handles at once if it is small (`capacity`), and what to do after requests
failed (`heal`). Implementations (DataTrove keeps its `InferenceServer`s apart from its runner the same way):
- fi_spark.serving.remote.RemoteEndpoints: the configured `llm.endpoints` (probed, never restarted);
- fi_spark.serving.local.LocalVLLM: the shared local vLLM server (started, leased, healed);
- fi_spark_testkit.fault_server.FaultServer: the fault-injecting test server (tests and benchmarks only).

fi_spark.serving.server_for(cfg) picks one of the first two from a stage's settings.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable


@runtime_checkable
class InferenceServer(Protocol):
    """An OpenAI-compatible server (or several, one API) that `complete` sends requests to."""

    @property
    def model(self) -> str:
        """The served model name every request carries (and its request id hashes)."""
        ...

    @property
    def capacity(self) -> int | None:
        """Requests it handles at once when it is one small server (more only queue); None: no limit to respect."""
        ...

    def endpoints(self) -> list[str]:
        """Base URLs (`http://host:port/v1`); starting a local server on the first call is allowed."""
        ...

    def heal(self, reason: str, logger: logging.Logger | None = None) -> bool:
        """Called after requests failed for a server reason (`reason` says how many): make the server answer
        again if this implementation can (restart a local one). True when failed requests are worth sending
        once more; False when nothing was restarted (a remote server: the client's retries were the remedy)."""
        ...
