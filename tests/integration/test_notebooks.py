"""The notebooks under notebooks/ execute on a small real run, top to bottom, in the virtualenv's Python.

One small run, shared with the export-consumer test (tests/integration/small_run.py: two tracked pipeline
runs over four documents, the LLM stages against the fault-injecting scripted server). nbclient executes
each notebook in a fresh kernel whose interpreter is this test's (a kernel spec written into a temporary
JUPYTER_PATH), with the run folder passed as FI_SPARK_RUN. A cell appended at the end prints the
notebook's key variables as JSON, which the tests compare with the run's known outcome.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from small_run import shared_run  # noqa: E402 - a helper module beside this file

pytestmark = pytest.mark.slow  # one kernel start per notebook, on top of the run
NOTEBOOKS = REPO / "notebooks"
KERNEL = "fi-spark-test"


@pytest.fixture(scope="module")
def run_folder(_embedded, tmp_path_factory) -> Path:
    return shared_run(_embedded, tmp_path_factory)


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory, run_folder) -> Path:
    """A kernel spec running this interpreter with the repository importable and the run as FI_SPARK_RUN."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    env = {"FI_SPARK_RUN": str(run_folder), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": KERNEL, "language": "python", "env": env}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return root


def execute(name: str, kernel_path: Path, report: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict]:
    """Run notebooks/<name>.ipynb plus a last cell printing `json.dumps(<report>)`; returns (notebook, that JSON)."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    book.cells.append(nbformat.v4.new_code_cell(f"import json, sys\nprint(json.dumps({report}, default=str))"))
    client = nbclient.NotebookClient(book, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(REPO)}})
    client.execute()  # raises CellExecutionError naming the cell on the first error
    for cell in book.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
    printed = "".join(o.get("text", "") for o in book.cells[-1].outputs if o.output_type == "stream")
    return book, json.loads(printed.strip().splitlines()[-1])


def tagged(book: Any, tag: str) -> str:
    """The text/plain (or html) of the cell tagged `tag`; fails when the cell shows nothing."""
    cell = next(c for c in book.cells if tag in c.metadata.get("tags", []))
    shown = [o["data"].get("text/plain", "") for o in cell.outputs if o.output_type == "execute_result"]
    assert shown and shown[0], f"cell {tag!r} shows no result"
    return str(shown[0])


def test_explore_run_funnel_rejects_and_sample_pairs(run_folder, kernel_path, monkeypatch):
    """explore_run: views of every table, the funnel, rejects by reason, sample pairs with source and template,
    and the tables by catalog name with the kept view."""
    report = (
        '{"kernel": sys.executable, "views": views, "funnel": funnel.to_dict("records"), '
        '"rejects": rejects.to_dict("records"), "sample": sample.to_dict("records"), "llm": llm.to_dict("records"), '
        '"threshold": threshold, "names": names, "kept": kept.to_dict("records")}'
    )
    import deltalake

    book, out = execute("explore_run", kernel_path, report, monkeypatch)
    assert out["kernel"] == sys.executable
    assert out["views"]["documents"] == 4 and out["views"]["pairs"] == 6 and out["views"]["lineage"] == 6
    steps = {(r["unit"], r["step"]): r["rows"] for r in out["funnel"]}
    assert steps[("documents", "input")] == 4 and steps[("pairs", "candidates (matches)")] == 12
    assert steps[("pairs", "passed checks")] == 6 and steps[("pairs", "judged")] == 6
    assert {(r["table_name"], r["reason"], r["rejected"]) for r in out["rejects"]} == {
        ("pair_rejects", "unfilled_slots", 4),
        ("pair_rejects", "ungrounded", 2),
    }
    assert out["sample"], "no pair at or above the judge threshold"
    for pair in out["sample"]:
        assert pair["judge_score"] >= out["threshold"]
        assert "<fi>" in pair["template"] and "<fi>" not in pair["instruction"]
        assert pair["source"].endswith("documents.jsonl") and pair["source_text"]
        assert pair["answer"].split(".")[0] in pair["source_text"]  # the scripted answer: the first sentence
    assert {r["stage"]: r["requests"] for r in out["llm"]} == {"instantiate": 12, "judge": 6}
    assert "ungrounded" in tagged(book, "examples") and "grounding" in tagged(book, "examples")
    # by name: the catalog tables (tables.schema=fi_spark) and the kept view with the threshold applied
    assert out["names"]["judged"] == "`fi_spark`.`judged`" and out["names"]["pairs_kept"] == "`fi_spark`.`pairs_kept`"
    assert {"documents", "pairs", "judged", "llm_responses", "judged_kept"} <= set(out["names"])
    judged = deltalake.DeltaTable(str(run_folder / "tables" / "judged")).to_pandas()
    assert sum(r["pairs"] for r in out["kept"]) == int((judged.score >= out["threshold"]).sum()) > 0
    assert all(r["judge_score"] >= r["threshold"] == out["threshold"] for r in out["kept"])


def test_time_travel_reads_the_first_version(run_folder, kernel_path, monkeypatch):
    """time_travel: delta-rs history of `pairs`, versionAsOf the first version, the rows added since."""
    report = (
        '{"history": history.to_dict("records"), "rows": rows_by_version, '
        '"added": sorted(added.doc_id), "growth": int(growth.added[0])}'
    )
    _, out = execute("time_travel", kernel_path, report, monkeypatch)
    versions = [h["version"] for h in out["history"]]
    assert versions == sorted(versions, reverse=True) and len(versions) == 2
    assert out["rows"] == {str(versions[-1]): 4, str(versions[0]): 6}
    assert out["added"] == ["news-1", "news-1"]  # the second run's documents: news-1's two pairs (news-2 ungrounded)
    assert out["growth"] == 2


def test_compare_runs_lists_differences_first(run_folder, kernel_path, monkeypatch):
    """compare_runs: both pipeline runs listed; the judge threshold and the row counts differ, shown first."""
    report = '{"runs": len(runs), "keys": list(comparison.key), "differs": list(comparison.differs)}'
    _, out = execute("compare_runs", kernel_path, report, monkeypatch)
    assert out["runs"] == 2
    differing = [k for k, d in zip(out["keys"], out["differs"], strict=True) if d]
    assert out["differs"] == sorted(out["differs"], reverse=True)  # every differing key before every equal one
    assert "param judge.threshold" in differing and "instantiate.rows_out" in differing
    assert "param llm.model" in out["keys"] and "param llm.model" not in differing
