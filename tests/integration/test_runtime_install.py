"""The wheel fits a runtime that brings its own pandas / numpy / pyarrow (issue #20 item 3).

A virtualenv stands in for a Databricks or EMR runtime: it already holds older in-range versions (pandas 2.2.3,
numpy 2.2.6, pyarrow 21.0.0). `pip install --dry-run --report` of the built wheel into it proves pip keeps all
three (it resolves from the package index; nothing is installed). Then fi_spark runs a stage on those versions:
the venv gets the test interpreter's site-packages appended *after* its own (a .pth file, as
tests/integration/spark_venv.py does), so its older pandas / numpy / pyarrow shadow the main ones and the rest
is shared, and `fi-spark pipeline --only prepare_corpus,ingest_queries` runs there on the bundled sample.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a wheel build, ~60 MB of downloads once (pip's cache after), a resolve, a run

RUNTIME = {"pandas": "2.2.3", "numpy": "2.2.6", "pyarrow": "21.0.0"}  # in range, older than constraints.txt


def pip(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """This interpreter's pip, without PYTHONPATH: a source tree on it would read as an installed fi-spark."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO))
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    return next(out.glob("fi_spark-*.whl"))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv (no pip of its own: this interpreter's pip installs into it) holding only the runtime's versions."""
    home = tmp_path_factory.mktemp("runtime")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    pinned = [f"{name}=={version}" for name, version in RUNTIME.items()]
    done = pip("--python", str(home / "bin" / "python"), "install", "--no-deps", *pinned)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return home


def test_wheel_metadata_has_no_exact_pins(wheel: Path):
    """The built wheel's Requires-Dist: ranges for the packages runtimes own; torch and pyspark only in extras."""
    with zipfile.ZipFile(wheel) as whl:
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [line.split(":", 1)[1].strip() for line in whl.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:")]  # fmt: skip
    reqs = [Requirement(r) for r in requires]
    core = {canonicalize_name(r.name): r for r in reqs if r.marker is None}
    for r in reqs:
        if canonicalize_name(r.name) in ("pandas", "numpy", "pyarrow", "mlflow", "torch"):
            assert not {s.operator for s in r.specifier} & {"==", "==="}, str(r)
    assert str(core["pandas"].specifier) in ("<3,>=2.2", ">=2.2,<3")
    assert "torch" not in core and "pyspark" not in core and "pyspark-client" not in core


def test_installing_the_wheel_keeps_the_runtimes_versions(wheel: Path, runtime: Path, tmp_path: Path):
    """pip's resolution of the wheel into the runtime installs other packages but replaces none of the three."""
    report = tmp_path / "report.json"
    plan = pip("--python", str(runtime / "bin" / "python"), "install", "--dry-run", "--report", str(report),
               "--quiet", str(wheel))  # fmt: skip
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    planned = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }  # noqa: E501
    assert "fi-spark" in planned and "deltalake" in planned  # the resolve did run
    assert not set(RUNTIME) & set(planned), {k: planned[k] for k in set(RUNTIME) & set(planned)}


def test_a_stage_runs_on_the_runtimes_versions(runtime: Path, tmp_path: Path):
    """prepare_corpus and ingest_queries on the sample, with pandas 2.2.3 / numpy 2.2.6 / pyarrow 21.0.0 imported."""
    purelib = next((runtime / "lib").glob("python3*/site-packages"))
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "zz_fi_spark_parent_site.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in parents) + "\n", encoding="utf-8"
    )
    python = str(runtime / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONNECT_MODE_ENABLED", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(REPO)
    code = "import pandas, numpy, pyarrow; print(pandas.__version__, numpy.__version__, pyarrow.__version__)"
    versions = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split()
    assert versions == list(RUNTIME.values())
    out = tmp_path / "out"
    run = subprocess.run(
        [python, "-m", "fi_spark.cli", "pipeline", "--only", "prepare_corpus,ingest_queries", "--output", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "prepare_corpus: in=197 out=197 rejected=0" in run.stderr
    assert "ingest_queries: in=532 out=531 rejected=1 (duplicate=1)" in run.stderr
