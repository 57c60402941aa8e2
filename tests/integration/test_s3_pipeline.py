"""S3 end to end: the whole pipeline with every input and output on s3://, through injected S3 faults.

moto's S3 server (the shared ``moto_s3`` fixture) sits behind tests/s3_faults.py's proxy, which answers some
requests with 503 SlowDown (bursts of two) and 500 InternalError before they reach moto; every client of the
run -- Sail's object store for tables and JSONL input, pyarrow.fs for index, journal, exports, report and WARC
input -- talks to the proxy and must retry through it. Credentials come from the standard AWS chain
(environment variables, distinctive fake values), and no file the run leaves, local or in the bucket, and
no log line holds them. Inputs are uploaded and outputs downloaded by boto3 straight from moto (no faults).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_pairs_stages import ScriptedServer  # a helper module beside this file

from tests.conftest import REPO
from tests.s3_faults import FaultyS3Proxy
from tests.warc_builder import build_warc

BUCKET = "fi-e2e"
SAMPLE = REPO / "fi_spark" / "resources" / "sample"
KEY_ID = "AKIAE2EFAKEKEY7Q2Z9X"
SECRET = "e2eFaKeSeCrEt/9x8w7v6u5t4s3r2q1p0o+NmLkJi"
N_DOCS = 8


@pytest.fixture
def faulty_s3(moto_s3: str, monkeypatch: pytest.MonkeyPatch):
    """(proxy, boto3 client straight to moto): the AWS variables point every client of a run at the proxy."""
    import boto3

    first_attempts = (  # besides ~8% of all requests by hash: objects of each client and kind, throttled once
        "/in/documents.jsonl", "/in/queries.jsonl", "/index/LATEST", "-000000.jsonl", "/export/stats.json",
        "/report/report.html", ".warc.gz",
    )  # fmt: skip
    with FaultyS3Proxy(moto_s3, every=25, slowdown_attempts=2, first_attempt_of=first_attempts) as proxy:
        for name, value in {
            "AWS_ENDPOINT_URL": proxy.url,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ALLOW_HTTP": "true",  # Sail's object store refuses http:// endpoints without it
        }.items():
            monkeypatch.setenv(name, value)
        direct = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
        direct.create_bucket(Bucket=BUCKET)
        yield proxy, direct


def run_cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    """`fi-spark ARGS` in a subprocess from `tmp_path`; (rc, log)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONNECT_MODE_ENABLED", "MLFLOW_TRACKING_URI")}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    log = tmp_path / f"{args[0]}.log"
    with log.open("w", encoding="utf-8") as fh:
        cmd = [sys.executable, "-m", "fi_spark.cli", *args]
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, timeout=900).returncode
    return rc, log.read_text(encoding="utf-8", errors="replace")


def stage_line(log: str, stage: str) -> str:
    return next(line.split(" fi_spark: stage ", 1)[1] for line in log.splitlines() if f"stage {stage}: in=" in line)


def download(client, prefix: str, dest: Path) -> list[Path]:
    """Every object under `prefix` in the bucket, copied below `dest` (straight from moto)."""
    files = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue  # pyarrow's folder markers
            target = dest / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(BUCKET, obj["Key"], str(target))
            files.append(target)
    return files


def delta_table(path: str):
    """A Delta table of the run, read by delta-rs through the proxy (its object store retries too)."""
    import deltalake

    options = {"AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"], "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    return deltalake.DeltaTable(f"s3://{BUCKET}/{path}", storage_options=options)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_whole_pipeline_on_s3_through_faults_without_leaking_credentials(faulty_s3, tmp_path):
    """Every stage on s3:// succeeds through injected SlowDown/500s with the counts the scripted LLM gives;
    every client used the environment's credentials; no output file, object or log line holds them."""
    proxy, direct = faulty_s3
    for name in ("documents", "queries"):
        direct.put_object(Bucket=BUCKET, Key=f"in/{name}.jsonl", Body=_head(SAMPLE / f"{name}.jsonl", N_DOCS))
    with ScriptedServer() as llm:
        sets = [
            "engine.shuffle_partitions=2",
            f"llm.endpoints=[{llm.url}]",
            "llm.model=test-model",
            "match.min_score=-1.0",  # every document matches the single template the test server writes
            "match.token_budget=null",
            f"index.cache_dir={tmp_path / 'index-cache'}",
            "export.rows_per_shard=2",
            "instantiate.prompt=instantiate.v1",
            "judge.threshold=4",  # the counts below are at the paper's cut (the local profile keeps 3)
            "templates.prompt=genericize.v1",
            "templates.extractive_only=false",  # the prompts ScriptedServer's answers fit
            "judge.prompt=judge.v2",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",  # a remote output needs a store that outlives it
        ]
        rc, log = run_cli(
            tmp_path, "pipeline", "--documents", f"s3://{BUCKET}/in/documents.jsonl",
            "--queries", f"s3://{BUCKET}/in/queries.jsonl", "--output", f"s3://{BUCKET}/run",
            *(a for s in sets for a in ("--set", s)),
        )  # fmt: skip
    assert rc == 0, log[-5000:]
    expected = {
        "prepare_corpus": "in=8 out=8 rejected=0 (none)",
        "ingest_queries": "in=8 out=8 rejected=0 (none)",
        "genericize": "in=8 out=8 rejected=0 (none)",
        "build_index": "in=1 out=1 rejected=0 (none)",
        "match": "in=8 out=8 rejected=0 (none)",
        "instantiate": "in=8 out=8 rejected=0 (none)",
        "judge": "in=8 out=3 rejected=5 (below_threshold=5)",
        "export": "in=3 out=3 rejected=0 (none)",
    }
    assert {s: stage_line(log, s).split(":", 1)[1].split(" in ")[0].strip() for s in expected} == expected, log[-4000:]
    assert "report written to s3://fi-e2e/run/report" in log

    # the faults were real, reached both clients (Sail: tables and input; pyarrow: index, export, report)
    assert proxy.counts["SlowDown"] > 0 and proxy.counts["InternalError"] > 0, proxy.counts
    faulted = proxy.faulted_paths
    for path in ("in/documents.jsonl", "in/queries.jsonl", "run/index/LATEST", "run/export/stats.json"):
        assert f"/{BUCKET}/{path}" in faulted, sorted(faulted)
    assert f"/{BUCKET}/run/report/report.html" in faulted, sorted(faulted)
    for part in ("/run/tables/", "/run/llm_journal/genericize/", "/run/llm_journal/instantiate/"):
        assert any(part in p for p in faulted), (part, sorted(faulted))
    assert proxy.access_keys == {KEY_ID}  # every signed request used the environment's credentials

    # the outputs on s3://, read back: tables (delta-rs), exported pairs (JSONL shards)
    tables = ("documents", "chunks", "templates", "matches", "pairs", "judged")
    rows = {t: len(delta_table(f"run/tables/{t}").to_pandas()) for t in tables}
    assert rows == {"documents": 8, "chunks": 8, "templates": 1, "matches": 8, "pairs": 8, "judged": 8}  # 1: the
    # test server writes one template for every query
    bucket = download(direct, "run/", tmp_path / "bucket")
    shards = sorted(p for p in bucket if p.parent.name == "data" and p.suffix == ".jsonl")
    pairs = [json.loads(line) for p in shards for line in p.read_text(encoding="utf-8").splitlines()]
    assert len(pairs) == 3 and len(shards) == 2
    documents = [json.loads(line)["text"] for line in io.StringIO(_head(SAMPLE / "documents.jsonl", N_DOCS))]
    answers = [p["messages"][-1]["content"] for p in pairs]
    assert all(any(a[:-1] in d for d in documents) for a in answers), answers  # the scripted, grounded answers

    # no secret anywhere: the log, every local file of the run (MLflow store), every object in the bucket
    local = [p for p in tmp_path.rglob("*") if p.is_file() and "bucket" not in p.relative_to(tmp_path).parts]
    assert any(p.name == "mlflow.db" for p in local) and any(p.name == "report.html" for p in bucket)
    leaks = [f"{s[:6]}... in {p}" for p in local + bucket for s in (SECRET, KEY_ID) if s.encode() in p.read_bytes()]
    assert leaks == []


def html_page(text: str) -> bytes:
    paragraphs = "".join(f"<p>{line}</p>" for line in text.split("\n") if line.strip())
    return f"<html><body><article>{paragraphs}</article></body></html>".encode()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_warc_input_on_s3_through_faults(faulty_s3, tmp_path):
    """WARC files under an s3:// prefix become documents, read through throttled GETs; a 404 page and a
    truncated gzip member (found only because the remote file is seekable) are rejects with their reasons."""
    proxy, direct = faulty_s3
    texts = [json.loads(line)["text"] for line in _head(SAMPLE / "documents.jsonl", 8).splitlines()][4:]
    url = "https://e2e.example/{}".format
    pages = build_warc(
        [(url(1), "200 OK", html_page(texts[0]), "text/html"), (url(2), "200 OK", html_page(texts[1]), "text/html"),
         (url("gone"), "404 Not Found", b"<html><body>gone</body></html>", "text/html")]
    )  # fmt: skip
    cut = build_warc([(url(3), "200 OK", html_page(texts[2]), "text/html")])
    cut += build_warc([(url(4), "200 OK", html_page(texts[3]), "text/html")])[:20]  # the next member's header only
    direct.put_object(Bucket=BUCKET, Key="warc/a/pages.warc.gz", Body=pages)
    direct.put_object(Bucket=BUCKET, Key="warc/b/cut.warc.gz", Body=cut)
    rc, log = run_cli(
        tmp_path, "prepare-corpus", "--documents", f"s3://{BUCKET}/warc/", "--output", f"s3://{BUCKET}/warc-run",
        "--set", "tracking.enabled=false", "--set", "web.extractor=resiliparse",
    )  # fmt: skip
    assert rc == 0, log[-5000:]
    line = stage_line(log, "prepare_corpus")
    assert line.startswith("prepare_corpus: in=5 out=3 rejected=2 (warc_http_status=1, warc_unreadable=1)"), line
    for key in ("warc/a/pages.warc.gz", "warc/b/cut.warc.gz"):
        assert f"/{BUCKET}/{key}" in proxy.faulted_paths, proxy.faulted_paths  # each file's first GET throttled

    docs = delta_table("warc-run/tables/documents").to_pandas()
    assert sorted(docs["url"]) == [url(1), url(2), url(3)]


def _head(path: Path, n: int) -> str:
    with path.open(encoding="utf-8") as fh:
        return "".join(itertools.islice(fh, n))
