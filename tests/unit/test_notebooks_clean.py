"""Notebooks are committed clean: no outputs, no execution counts, a parameters cell, logic imported from fi_spark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    """The glob below finds the notebooks (an empty parametrization would pass silently)."""
    assert {p.name for p in NOTEBOOKS} >= {"explore_run.ipynb", "time_travel.ipynb", "compare_runs.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_or_execution_counts(path):
    """A committed notebook carries no outputs (they hold run data and churn diffs) and no execution counts."""
    dirty = [c.get("id") for c in code_cells(path) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_and_fi_spark_imports(path):
    """The first code cell is papermill's `parameters` cell reading FI_SPARK_RUN; the notebook imports fi_spark."""
    cells = code_cells(path)
    first = cells[0]
    assert "parameters" in first.get("metadata", {}).get("tags", []), f"{path.name}: first code cell not tagged"
    assert "FI_SPARK_RUN" in "".join(first["source"])
    assert any("from fi_spark" in "".join(c["source"]) for c in cells[1:])
