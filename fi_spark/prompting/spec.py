"""Versioned prompt files (conf/prompts/<name>.yaml): the `PromptSpec` model and `load_prompt`.

Prompts are configuration, read from the same conf/ folders as profiles (fi_spark.section.conf_dirs),
but referenced by name from a section (`templates.prompt`, `instantiate.prompt`, `judge.prompt`) and
loaded by the stage that sends them; kept apart from fi_spark.config so that the prompt code of the
templates and generate packages can import it without importing every section.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from fi_spark.section import ConfigError, Section, conf_dirs


class PromptExample(Section):
    """One few-shot example: the values the user template is formatted with, and the JSON answer."""

    input: dict[str, Any]
    output: dict[str, Any]


class PromptSpec(Section):
    """A versioned prompt file. `user` is a `str.format` template; `version_tag` names it in lineage columns."""

    name: str
    version: str
    system: str = ""
    user: str
    examples: list[PromptExample] = Field(default_factory=list)
    notes: str = ""
    prompt_format: Literal["fi-spark", "fineinstructions", "flow-judge"] = Field(
        default="fi-spark",
        description="fi-spark: this file's system/user/examples; fineinstructions: the released "
        "models' own input/output contract (fi_spark.prompting.fineinstructions), system/examples unused; "
        "flow-judge (judge only): Flow Judge's published template and <feedback>/<score> output "
        "(fi_spark.judge.flow_judge)",
    )
    answer_style: Literal["copied", "excerpts", "sentences", "window"] = Field(
        default="copied",
        description="instantiate: answers copied, with <excerpt> markers, numbered sentences, or (window) only "
        "the slot values, the answer being the window of sentences the encoder picks (instantiate.answer_span best)",
    )
    template_style: Literal["written", "from_query"] = Field(
        default="written",
        description="genericize: the model writes the template, or names the query's spans to slot and the "
        "template is the query with them replaced (fi_spark.genericize.prompts.template_from_query)",
    )
    instruction_style: Literal["written", "filled"] = Field(
        default="written",
        description="instantiate: the model writes the instruction, or only the slot values and the instruction "
        "is the template with them filled in (it cannot drift from the template or be cut at a length cap)",
    )
    slot_choices: bool = Field(
        default=False,
        description="instantiate: each slot is shown with phrases of the document that fit it "
        "(fi_spark.instantiate.slot_choices), for the model to copy one",
    )
    decline: bool = Field(
        default=True,
        description='instantiate (excerpts / sentences): the model may answer {"compatible": false}; false = it '
        "always fills the template and the checks decide (for models whose decline is no better than chance)",
    )
    judge_style: Literal["rubric", "yes_no", "likelihood"] = Field(
        default="rubric",
        description="judge: a score token on the rubric's scale, one yes/no token (P(yes) mapped onto the "
        "scale, fi_spark.judge.rubric), or the answer's likelihood lift (fi_spark.judge.likelihood)",
    )
    neutral: str = Field(default="", description="likelihood judge: the request the answer is compared against")
    lift_edges: list[float] = Field(
        default_factory=list, description="likelihood judge: ascending lifts (nats/token) of the scale's steps"
    )
    path: str = Field(default="", description="where it was loaded from (set by load_prompt)")

    @property
    def version_tag(self) -> str:
        """`name.version+<8 hex of the content>`: an edit without a version bump still shows in lineage."""
        body = self.model_dump(mode="json", exclude={"path"})
        for key, default in (
            ("prompt_format", "fi-spark"),
            ("answer_style", "copied"),
            ("instruction_style", "written"),
            ("template_style", "written"),
            ("decline", True),
            ("slot_choices", False),
            ("judge_style", "rubric"),
            ("neutral", ""),
            ("lift_edges", []),
        ):
            if body.get(key) == default:  # fields added later: files that do not set them keep their tag
                body.pop(key)
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:8]
        return f"{self.name}.{self.version}+{digest}"


def load_prompt(ref: str) -> PromptSpec:
    """A prompt by name (`instantiate.v1` -> conf/prompts/instantiate.v1.yaml in conf_dirs()) or YAML path."""
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml"):
        paths = [candidate]
    else:
        paths = [d / "prompts" / f"{ref}.yaml" for d in conf_dirs()]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise ConfigError(f"prompt {ref!r}: not found (looked in {', '.join(str(p) for p in paths)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping (name, version, system, user, examples)")
        return PromptSpec.model_validate({**data, "path": str(path)})
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid prompt file: {problems}") from None
