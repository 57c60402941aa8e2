"""Loading a profile: YAML file + `--set` overrides -> a validated `Config`, checked once (fi_spark.config.checks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fi_spark.config.checks import check_profile  # it names Config for typing only: no cycle
from fi_spark.config.model import Config
from fi_spark.section import ConfigError, conf_dirs


# --------------------------------------------------------------------------- loading
def find_profile(profile: str) -> Path:
    """A profile is a name (`local`, `databricks`, `emr`) or a path to a YAML file."""
    candidate = Path(profile)
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"--profile: file not found: {profile}")
    for folder in conf_dirs():
        path = folder / f"{profile}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in conf_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"--profile: no profile named {profile!r}; choose from {', '.join(known) or '(none found)'}")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`prepare.chunk_tokens=512` -> (['prepare', 'chunk_tokens'], 512); values are parsed as YAML scalars."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if len(parts) < 2:
        raise ConfigError(f"--set {item!r}: the key must name a section and a key, e.g. prepare.chunk_tokens=512")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def load_config(profile: str | None = "local", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build the run's Config from a profile and `--set` overrides, or raise one ConfigError."""
    data: dict[str, Any] = {}
    source = "defaults"
    if profile:
        path = find_profile(profile)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded
    for item in overrides:
        parts, value = parse_override(item)
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, overrides)) from None
    problems = check_profile(config)
    if problems:
        given = f", overrides {' '.join(overrides)}" if overrides else ""
        raise ConfigError(f"inconsistent configuration (profile {source}{given}): " + " ".join(problems))
    return config


def _explain(exc: ValidationError, source: str, overrides: list[str] | tuple[str, ...]) -> str:
    lines = [f"invalid configuration (profile {source}{', overrides ' + ' '.join(overrides) if overrides else ''}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            section = _section_for(err["loc"])
            known = ", ".join(sorted(section.model_fields)) if section else ""
            lines.append(f"  {key}: unknown key" + (f"; known keys: {known}" if known else ""))
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def _section_for(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
