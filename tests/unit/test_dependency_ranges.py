"""setup.py declares compatible ranges and constraints.txt pins the tested set (issue #20 item 3).

A wheel that pins `pandas==2.3.3` replaces a Databricks or EMR runtime's own pandas when installed there; the
ranges let pip keep what the runtime has, and constraints.txt keeps laptops and CI on the tested versions.
"""

from __future__ import annotations

import ast

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

RUNTIME_OWNED = ("pandas", "numpy", "pyarrow", "mlflow", "torch")  # what Databricks / EMR runtimes bring


def declared() -> dict[str, list[str]]:
    """The requirement lists assigned at the top of setup.py (INSTALL_REQUIRES, SPARK, CLASSIC, EMBED)."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    lists: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and all(isinstance(e, ast.Constant) for e in node.value.elts):
                lists[target.id] = [str(ast.literal_eval(e)) for e in node.value.elts]
    return lists


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines()
    found = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name.split("[")[0])] = version.strip()
    return found


def test_runtime_owned_packages_are_ranges_not_pins():
    """pandas, numpy, pyarrow, mlflow (install_requires) and torch (the embed extra) carry no exact pin."""
    lists = declared()
    assert set(lists) >= {"INSTALL_REQUIRES", "SPARK", "CLASSIC", "EMBED"}
    reqs = {canonicalize_name(r.name): r for r in map(Requirement, [x for v in lists.values() for x in v])}
    for name in RUNTIME_OWNED:
        operators = {spec.operator for spec in reqs[name].specifier}
        assert operators and not operators & {"==", "==="}, (name, str(reqs[name].specifier))
        assert ">=" in operators, name  # a tested lower bound
    assert "torch" not in {canonicalize_name(Requirement(r).name) for r in lists["INSTALL_REQUIRES"]}
    assert "pyspark" not in {canonicalize_name(Requirement(r).name) for r in lists["INSTALL_REQUIRES"]}


def test_every_requirement_is_pinned_in_constraints_within_its_range():
    """constraints.txt pins each requirement of setup.py, and the pinned (tested) version lies in the range."""
    pinned = pins()
    for group, reqs in declared().items():
        for text in reqs:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            assert name in pinned, f"{group}: {name} has no pin in constraints.txt"
            assert req.specifier.contains(pinned[name], prereleases=True), (group, text, pinned[name])


def test_ci_runs_exactly_the_readmes_second_quick_start_command():
    """.ci/run is the README's second Quick start line, and both install with the constraints file."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quick start", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    ci = [line for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines() if line.startswith("python")]
    assert ci == [block[1]]
    assert all("pip install -c constraints.txt " in line for line in block)


def test_missing_embed_extra_is_one_line(monkeypatch):
    """Without torch / sentence-transformers (a runtime without the `embed` extra) embedding stops in one line."""
    import importlib.util

    import pytest

    from fi_spark.embed import encoder
    from fi_spark.section import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    with pytest.raises(ConfigError, match=r"pip install -c constraints.txt 'fi-spark\[embed\]'"):
        encoder.require_encoder_packages()


def test_classic_engine_on_the_connect_client_is_one_line(monkeypatch):
    """engine.mode=local with only pyspark-client installed (the `spark` extra) names the `classic` extra."""
    import pyspark.util
    import pytest

    from fi_spark import engine
    from fi_spark.section import ConfigError

    monkeypatch.setattr(pyspark.util, "is_remote_only", lambda: True)
    with pytest.raises(ConfigError, match=r"engine.mode=local needs the classic JVM engine.*the `classic` extra"):
        engine._require_classic_pyspark("local")
    monkeypatch.setattr(pyspark.util, "is_remote_only", lambda: False)
    engine._require_classic_pyspark("local")  # the full pyspark: nothing to say
