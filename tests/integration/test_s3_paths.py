"""s3:// inputs and outputs on the embedded engine, against a local S3-compatible server (moto)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

SAMPLE = REPO / "fi_spark" / "resources" / "sample" / "documents.jsonl"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_env():
    """A moto S3 server on loopback and the AWS variables that point boto3 and Sail at it."""
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    try:
        yield env
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_prepare_corpus_reads_and_writes_s3(s3_env):
    """Input from s3://, Delta tables written to s3://, and a re-run adds nothing."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    s3.create_bucket(Bucket="fi-bucket")
    s3.upload_file(str(SAMPLE), "fi-bucket", "in/docs.jsonl")
    args = [
        sys.executable,
        "-m",
        "fi_spark.cli",
        "prepare-corpus",
        "--documents",
        "s3://fi-bucket/in/docs.jsonl",
        "--output",
        "s3://fi-bucket/run1",
        "--set",
        "tracking.enabled=false",
    ]
    first = subprocess.run(args, env=s3_env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "table documents: +250 rows (delta, s3://fi-bucket/run1/tables/documents)" in first.stderr
    second = subprocess.run(args, env=s3_env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert second.returncode == 0 and "table documents: +0 rows" in second.stderr
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="fi-bucket", Prefix="run1/tables/documents/")["Contents"]]
    assert any("_delta_log/" in k for k in keys) and any(k.endswith(".parquet") for k in keys)
