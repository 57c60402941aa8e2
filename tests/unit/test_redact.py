"""Secrets masked in config dumps, MLflow params and ledger endpoints (fi_spark.redact)."""

from __future__ import annotations

import pytest

from fi_spark.config import load_config
from fi_spark.redact import MASK, is_secret_key, redact, redact_config, redact_url


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("engine.spark_conf.spark.hadoop.fs.s3a.secret.key", True),
        ("engine.spark_conf.spark.hadoop.fs.s3a.access.key", True),
        ("engine.spark_conf.spark.hadoop.fs.s3a.session.token", True),
        ("engine.spark_conf.fs.azure.account.key.acct.blob.core.windows.net", True),
        ("db.password", True),
        ("llm.api_key", True),
        ("llm.api_key_env", False),  # the *name* of the variable, useful and harmless
        ("llm.max_tokens", False),
        ("llm.token_budget", False),
        ("prepare.chunk_tokens", False),
        ("export.split_salt", False),
    ],
)
def test_secret_keys(key, secret):
    """Which keys count as secrets: credentials yes, token counts and env-var names no."""
    assert is_secret_key(key) is secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pa55@host:8000/v1", f"http://{MASK}@host:8000/v1"),
        ("https://tok@api.example.com/v1", f"https://{MASK}@api.example.com/v1"),
        (
            "sc://host:443/;token=dapi123;x-databricks-cluster-id=abc",
            f"sc://host:443/;token={MASK};x-databricks-cluster-id=abc",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Signature=ab12&X-Amz-Date=1",
            f"https://b.s3.amazonaws.com/k?X-Amz-Signature={MASK}&X-Amz-Date=1",
        ),
        ("http://127.0.0.1:8011/v1", "http://127.0.0.1:8011/v1"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
    ],
)
def test_url_credentials_are_masked(text, expected):
    """userinfo and secret query / ;-parameters in URLs are masked; plain URLs are unchanged."""
    assert redact_url(text) == expected


def test_config_dump_masks_secrets_and_keeps_the_rest():
    """A resolved config with S3 keys in spark_conf and credentials in an endpoint URL: all masked, rest intact."""
    config = load_config(
        "local",
        [
            "engine.spark_conf={spark.hadoop.fs.s3a.secret.key: SEKRIT, spark.hadoop.fs.s3a.access.key: AKIAX}",
            "llm.endpoints=[http://bob:hunter2@10.0.0.1:8000/v1]",
            "llm.api_key_env=MY_KEY",
        ],
    )
    flat = redact_config(config.to_flat_dict())
    assert flat["engine.spark_conf.spark.hadoop.fs.s3a.secret.key"] == MASK
    assert flat["engine.spark_conf.spark.hadoop.fs.s3a.access.key"] == MASK
    assert flat["llm.endpoints"] == [f"http://{MASK}@10.0.0.1:8000/v1"]
    assert flat["llm.api_key_env"] == "MY_KEY"
    assert flat["prepare.chunk_tokens"] == config.prepare.chunk_tokens
    nested = str(redact(config.model_dump(mode="json")))
    assert "SEKRIT" not in nested and "AKIAX" not in nested and "hunter2" not in nested


def test_unreachable_connect_url_error_hides_its_token():
    """The one-line error for an unreachable Databricks-style connect URL names the host, not the token."""
    from fi_spark.engine import EngineError, check_reachable

    with pytest.raises(EngineError) as info:
        check_reachable("sc://127.0.0.1:1/;token=dapiGUARD0123;x-databricks-cluster-id=c1", timeout_s=2)
    assert "dapiGUARD0123" not in str(info.value) and "127.0.0.1:1" in str(info.value)
