"""A small valid instance of a JSON schema -- what the test server answers when asked for structured output.

Covers what our stage schemas use (objects, arrays, strings with enum/const/min/max length and simple
`pattern`s, numbers with bounds, booleans, `$ref` into `$defs`, anyOf/oneOf/allOf). For a `pattern` it
tries a few candidate strings (plain text, text with an `<fi>` slot, digits) and takes the first that
matches; a schema outside this subset gets a best-effort value, which the client's validation then
rejects -- that is a test-server limit, not something a user can meet.
"""

from __future__ import annotations

import re
from typing import Any


def minimal_instance(schema: dict[str, Any], seed_text: str = "x") -> Any:
    return _instance(schema, schema, seed_text, depth=0)


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    for _ in range(32):  # bounded: cyclic $refs end here
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _instance(root: dict[str, Any], node: Any, seed: str, depth: int) -> Any:
    if not isinstance(node, dict) or depth > 16:
        return None
    node = _resolve(root, node)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        return node["enum"][0]
    for key in ("anyOf", "oneOf"):
        if node.get(key):
            return _instance(root, node[key][0], seed, depth + 1)
    if node.get("allOf"):
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            merged.update(_resolve(root, part))
        return _instance(root, merged, seed, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in node else "string"
    if kind == "object":
        props = node.get("properties", {})
        required = node.get("required", list(props))
        return {name: _instance(root, props.get(name, {}), f"{seed}-{name}", depth + 1) for name in required}
    if kind == "array":
        count = max(1, int(node.get("minItems", 1)))
        return [_instance(root, node.get("items", {}), f"{seed}-{i}", depth + 1) for i in range(count)]
    if kind == "integer":
        return int(_number(node))
    if kind == "number":
        return float(_number(node))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(node, seed)


def _number(node: dict[str, Any]) -> float:
    low = node.get("minimum", node.get("exclusiveMinimum", 0))
    if "exclusiveMinimum" in node and "minimum" not in node:
        low = low + 1
    high = node.get("maximum", node.get("exclusiveMaximum"))
    return low if high is None or low <= high else high


def _string(node: dict[str, Any], seed: str) -> str:
    text = f"value {seed}"
    candidates = [text, f"What is <fi>{seed}</fi>?", f"{text} <fi>{seed}</fi>", "0", "a"]
    pattern = node.get("pattern")
    if pattern:
        matching = [c for c in candidates if re.search(pattern, c)]
        text = matching[0] if matching else text
    low, high = int(node.get("minLength", 0)), node.get("maxLength")
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if high is not None and len(text) > int(high):
        text = text[: int(high)]
    return text
