"""Secrets out of everything a run writes: config dumps in logs, MLflow params / artifacts, ledger endpoints.

The config names secrets only indirectly (``llm.api_key_env`` is the *name* of an environment variable),
but users put credentials into values too: ``engine.spark_conf`` with ``fs.s3a.secret.key``, endpoint URLs
like ``http://user:pass@host/v1``, ``sc://host/;token=...`` connect strings, pre-signed URLs. Two rules:

- a value whose key looks like a secret (password, secret, credential, api key, access / account / secret
  key, a key ending in ``token``) becomes ``***``; keys ending in ``_env`` name variables and are kept;
- every string value has URL credentials masked: ``user:pass@`` -> ``***@``, and ``token=`` / ``key=`` /
  ``password=`` / ``sig=`` / ``X-Amz-Signature=``-style parameters -> ``=***``.

Dependency-free, so the LLM client on Spark workers can use ``redact_url`` too.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_SECRET_WORDS = {"password", "passwd", "pwd", "secret", "secrets", "credential", "credentials", "apikey", "secretkey"}
_SECRET_PAIRS = {
    ("api", "key"), ("access", "key"), ("account", "key"), ("secret", "key"), ("private", "key"),
    ("session", "token"), ("auth", "token"), ("access", "token"), ("sas", "token"),
}  # fmt: skip
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s?#]+)@")
_PARAM = re.compile(
    r"(?P<name>(?:[;?&])(?:[A-Za-z0-9_\-]*(?:token|key|password|passwd|secret|signature|sig|credential)[A-Za-z0-9_\-]*))"
    r"=(?P<value>[^;&#\s]+)",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    """Whether a config / conf key names a secret value (``fs.s3a.secret.key`` yes, ``max_tokens`` no)."""
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    if not words or words[-1] == "env":
        return False
    if _SECRET_WORDS & set(words) or words[-1] == "token":
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False))


def redact_url(text: str) -> str:
    """Mask credentials inside URLs (userinfo and secret-looking query / ;-parameters) in any string."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _PARAM.sub(lambda m: f"{m['name']}={MASK}", text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of a config value (dicts and lists walked) with secrets masked; ``key`` is its dotted name."""
    if isinstance(value, dict):
        return {k: redact(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, key) for v in value]
    if value not in (None, "") and key and is_secret_key(key):
        return MASK
    if isinstance(value, str):
        return redact_url(value)
    return value


def redact_config(flat: dict[str, Any]) -> dict[str, Any]:
    """``section.key -> value`` (Config.to_flat_dict) with every secret masked."""
    return {k: redact(v, k) for k, v in flat.items()}
