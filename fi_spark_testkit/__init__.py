"""Test and benchmark helpers that must not ship in the wheel (setup.py packages only fi_spark).

- fault_server.py: the fault-injecting OpenAI-compatible server, an InferenceServer tests inject
  (fi_spark.serving.base);
- released.py: scripted stand-ins for the paper's three released models, on that server;
- scripted.py: the server's scripted prompt logprobs (a word model).

Importable from the repository root (pytest and the bench scripts run there; subprocesses get it on PYTHONPATH).
"""
