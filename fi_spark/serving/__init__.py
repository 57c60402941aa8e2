"""The servers the LLM client sends to, behind one interface (fi_spark.serving.base.InferenceServer).

- base.py: the interface (endpoints, model, capacity, heal);
- remote.py: the configured `llm.endpoints` (probed, never restarted);
- local.py: the shared local vLLM server on CPU (install, convert the bundled model, serve, heal);
- lease.py / supervise.py: one supervised local server per port: the users' leases and heal() / the
  supervisor process (idle timeout, restart);
- probe.py: the only code that calls `/models` and `/health`.

`server_for(cfg)` is how a stage gets its server; the fault-injecting test server (fi_spark_testkit, outside
the wheel) implements the same interface, so tests inject it instead.
"""

from __future__ import annotations

from fi_spark.config.llm import LLMConfig
from fi_spark.serving.base import InferenceServer
from fi_spark.serving.local import LocalVLLM
from fi_spark.serving.remote import RemoteEndpoints

__all__ = ["InferenceServer", "LocalVLLM", "RemoteEndpoints", "server_for"]


def server_for(cfg: LLMConfig) -> InferenceServer:
    """A stage's server: its `llm.endpoints` when set, else the shared local vLLM server (started on first use)."""
    if cfg.endpoints:
        return RemoteEndpoints(cfg)
    return LocalVLLM(cfg.local, model=cfg.model)
