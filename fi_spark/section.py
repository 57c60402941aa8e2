"""What every config module shares: the `Section` base, `ConfigError`, and where conf/ files are found.

Each package defines its own sections beside its code (fi_spark/<package>/config.py) and
fi_spark.config composes them into the one validated `Config`. This module sits below both, so a
package's section never imports the loader and the loader can import every section.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

CONF_DIR_ENV = "FI_SPARK_CONF_DIR"


class ConfigError(ValueError):
    """A configuration problem, worded for the person running the job."""


class Section(BaseModel):
    """Base for every section: immutable, and unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def conf_dirs() -> list[Path]:
    """Where profiles and prompts are looked up: $FI_SPARK_CONF_DIR, ./conf, then the repo's conf/."""
    dirs = []
    if os.environ.get(CONF_DIR_ENV):
        dirs.append(Path(os.environ[CONF_DIR_ENV]))
    dirs.append(Path.cwd() / "conf")
    dirs.append(Path(__file__).resolve().parent.parent / "conf")
    dirs.append(Path(__file__).resolve().parent / "conf")  # an installed wheel carries conf/ as fi_spark/conf
    return dirs
