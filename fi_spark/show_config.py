"""`fi-spark show-config`: the resolved configuration as YAML, each key with its description as a comment.

The output is a valid profile (`--profile` takes it back; comments are YAML comments), so a user can start
their own from it. Descriptions come from the config models themselves (a section's docstring, a field's
`description`), so they cannot drift from the code. `--diff` keeps only the keys whose value differs from the
model defaults: what a profile plus `--set` overrides actually changed. Secrets are redacted (output gets pasted
into issues).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from fi_spark.config import Config
from fi_spark.redact import redact


def _doc(model: type[BaseModel]) -> str:
    """The first paragraph of a section's docstring, on one line."""
    text = (model.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(text.split())


def _scalar(value: Any) -> str:
    """One YAML value on one line (flow style for lists and mappings)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True).strip()
    return text[: -len("...")].strip() if text.endswith("...") else text


def render_yaml(config: Config, diff_from: Config | None = None) -> str:
    """The YAML text of `config` (only keys that differ from `diff_from`, when given) with comments."""
    values = redact(config.model_dump(mode="json"))
    defaults = redact(diff_from.model_dump(mode="json")) if diff_from is not None else None
    lines: list[str] = []
    _section(type(config), values, defaults, 0, lines)
    return "\n".join(lines) + "\n" if lines else "{}\n"


def _section(
    model: type[BaseModel], values: dict[str, Any], defaults: dict[str, Any] | None, depth: int, lines: list[str]
) -> None:
    pad = "  " * depth
    for name, field in model.model_fields.items():
        value = values[name]
        default = None if defaults is None else defaults.get(name)
        if defaults is not None and value == default:
            continue
        sub = _submodel(field.annotation)
        if sub is not None and not sub.model_fields:  # open sections (a stage's own `llm` keys): one flow mapping
            sub = None
        if sub is not None and isinstance(value, dict):
            if lines and depth == 0:
                lines.append("")
            doc = _doc(sub)
            if doc:
                lines.append(f"{pad}# {doc}")
            lines.append(f"{pad}{name}:")
            _section(sub, value, default if isinstance(default, dict) else None if defaults is None else {}, depth + 1,
                     lines)  # fmt: skip
            continue
        line = f"{pad}{name}: {json.dumps(value) if isinstance(value, dict) else _scalar(value)}"
        comment = " ".join((field.description or "").split())
        if defaults is not None:
            comment = f"default: {_scalar(default)}" + (f"; {comment}" if comment else "")
        lines.append(f"{line}  # {comment}" if comment else line)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The config section class a field holds, if it is one (not Optional sections: none exist)."""
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
