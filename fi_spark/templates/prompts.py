"""Genericize prompts: versioned YAML files -> chat messages, and model answers -> template fields.

A prompt file (conf/prompts/genericize.v1.yaml) holds the system text, few-shot examples, the
user turn with a `{query}` placeholder and the JSON schema the answer must match. It is data,
not run configuration: `templates.prompt` in the config only names which file to use, so users
on a cluster can point at their own file (or a dedicated genericizer model's format) without
touching code. The prompt's content hash is recorded with each template (`prompt_version`), and
because the LLM layer hashes the messages into the request id, editing a prompt never reuses
stale answers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from fi_spark.config import ConfigError, conf_dirs


class PromptExample(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    query: str
    template: str
    compatible_document_description: str


class GenericizePrompt(BaseModel):
    """One versioned genericizer prompt (see conf/prompts/genericize.v1.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: int
    system: str
    user: str = Field(description="user turn; must contain {query}")
    examples: list[PromptExample] = Field(default_factory=list)
    response_schema: dict[str, Any]

    @property
    def label(self) -> str:
        """`genericize.v1@<hash8>`: stable name plus a content hash, stored with every template."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]
        return f"{self.name}.v{self.version}@{digest}"

    def messages(self, query: str) -> list[dict[str, str]]:
        """Chat messages for one query: system, few-shot pairs, then the query."""
        msgs = [{"role": "system", "content": self.system.strip()}]
        for ex in self.examples:
            answer = {"template": ex.template, "compatible_document_description": ex.compatible_document_description}
            msgs.append({"role": "user", "content": self._user(ex.query)})
            msgs.append({"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)})
        msgs.append({"role": "user", "content": self._user(query)})
        return msgs

    def _user(self, query: str) -> str:
        # str.replace, not str.format: queries and prompts contain braces of their own.
        return self.user.replace("{query}", query).strip()


def find_prompt(name: str) -> Path:
    """A prompt is a YAML path or a name looked up as prompts/<name>.yaml in the config folders."""
    candidate = Path(name).expanduser()
    if candidate.suffix in (".yaml", ".yml"):
        if candidate.is_file():
            return candidate
        raise ConfigError(f"templates.prompt: file not found: {name}")
    for folder in conf_dirs():
        path = folder / "prompts" / f"{name}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in conf_dirs() if (d / "prompts").is_dir() for p in (d / "prompts").glob("*.yaml")})
    raise ConfigError(f"templates.prompt: no prompt named {name!r}; choose from {', '.join(known) or '(none found)'}")


def load_prompt(name: str) -> GenericizePrompt:
    """Load and check a prompt file; any problem is one ConfigError naming the file."""
    path = find_prompt(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        prompt = GenericizePrompt.model_validate(data)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid genericize prompt: {exc}") from None
    if "{query}" not in prompt.user:
        raise ConfigError(f"{path}: the user turn must contain {{query}}")
    return prompt


def parse_answer(parsed_json: str | None) -> tuple[str | None, str | None, str | None]:
    """A schema-valid answer (JSON text from the LLM layer) -> (template, description, problem).

    The LLM layer already validated the JSON against the schema; this still guards against an
    answer of the wrong shape (another prompt's schema, a bank row) and returns a reason instead
    of raising.
    """
    if parsed_json is None:
        return None, None, "no answer"
    try:
        obj = json.loads(parsed_json)
    except (TypeError, ValueError) as exc:
        return None, None, f"answer is not JSON: {exc}"
    if not isinstance(obj, dict):
        return None, None, f"answer is a {type(obj).__name__}, not an object"
    template = obj.get("template")
    description = obj.get("compatible_document_description")
    if not isinstance(template, str):
        return None, None, "answer has no string 'template'"
    return template, description if isinstance(description, str) else None, None
