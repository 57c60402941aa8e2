"""No secret in anything a run writes: the LLM api key and S3 credentials are in no output file and no log line.

instantiate -> judge -> export -> report run through the CLI in a subprocess (log captured to a file), with
MLflow tracking on, the LLM stages pointed at the scripted test server with `llm.api_key_env` naming a
variable that holds a distinctive fake key, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY set, and the same S3
credentials (plus an endpoint URL with user:password) in `engine.spark_conf`, as users configure s3a. Then
every byte of every file under the output folder (tables, journal, MLflow sqlite db and artifacts, report,
export) and the log is searched for each secret.
"""

from __future__ import annotations

import os
import subprocess
import sys

from pairs_inputs import write_inputs  # helper modules beside this file
from test_pairs_stages import ScriptedServer, make_ctx

from tests.conftest import REPO

API_KEY = "sk-guard-4f1c9e7a2b6d8035aa"
AWS_ID = "AKIAGUARDFAKE7Q2Z9X1W"
AWS_SECRET = "gUaRdFaKeSeCrEt/9x8w7v6u5t4s3r2q1p0o+NmLk"
URL_PASSWORD = "gUaRdUrLpAsS31337"
SECRETS = [API_KEY, AWS_ID, AWS_SECRET, URL_PASSWORD]

OVERRIDES = [
    "llm.model=test-model",
    "export.rows_per_shard=2",
    "export.validation_fraction=0.3",
    "export.licenses={documents.jsonl: CC BY-SA 3.0}",
    "match.token_budget=null",
    "instantiate.prompt=instantiate.v1",
    "templates.prompt=genericize.v1",
    "templates.extractive_only=false",  # the prompts ScriptedServer's answers fit
    "judge.prompt=judge.v2",
]


def test_no_secret_in_any_output_file_or_log(_embedded, tmp_path):
    """Every file under the output folder and the captured log: none holds the api key or an S3 credential."""
    out = tmp_path / "run"
    out.mkdir()
    with ScriptedServer() as server:
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"  # as the embedded_engine fixture does
        write_inputs(make_ctx(_embedded, out, server, OVERRIDES), out)  # documents, templates, matches
        conf = (
            f"engine.spark_conf={{spark.hadoop.fs.s3a.access.key: {AWS_ID}, "
            f"spark.hadoop.fs.s3a.secret.key: '{AWS_SECRET}', "
            f"spark.hadoop.fs.s3a.endpoint: 'http://guard:{URL_PASSWORD}@127.0.0.1:9'}}"
        )
        sets = [f"llm.endpoints=[{server.url}]", "llm.api_key_env=FI_SPARK_GUARD_KEY", conf, *OVERRIDES]
        env = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONNECT_MODE_ENABLED", "MLFLOW_TRACKING_URI")}
        env.update(
            PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", FI_SPARK_GUARD_KEY=API_KEY,
            AWS_ACCESS_KEY_ID=AWS_ID, AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        )  # fmt: skip
        log_file = tmp_path / "run.log"
        with log_file.open("w", encoding="utf-8") as fh:
            cmd = [sys.executable, "-m", "fi_spark.cli", "pipeline", "--verbose", "--output", str(out),
                   "--only", "instantiate,judge,export,report", *(a for s in sets for a in ("--set", s))]  # fmt: skip
            rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=600).returncode
        calls = server.snapshot()
    log = log_file.read_text(encoding="utf-8", errors="replace")
    assert rc == 0, log[-4000:]
    for stage in ("instantiate", "judge", "export", "report"):
        assert f"fi_spark: stage {stage}: in=" in log, log[-4000:]
    # the key did reach the server, on every request: so a missing secret below is redaction, not absence
    assert calls["authorization"] == {f"Bearer {API_KEY}": calls["requests"]} and calls["requests"] > 0
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.relative_to(out).parts[0] for p in files}
    assert {"tables", "mlflow.db", "mlartifacts"} <= names, names
    assert any(p.name == "config.yaml" for p in files) and any(p.suffix == ".html" for p in files)
    searched = [("the log", log_file.read_bytes()), *((str(p.relative_to(out)), p.read_bytes()) for p in files)]
    found = [
        f"{secret[:8]}... in {where}"
        for where, data in searched
        for secret in SECRETS
        if secret.encode() in data
    ]  # fmt: skip
    assert found == [], found
    assert "FI_SPARK_GUARD_KEY" in log  # the variable's *name* is logged: the config says which one it reads
