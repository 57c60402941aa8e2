"""The deployment files (Databricks bundle, EMR step and serverless job run, --py-files zip, wheel) name things
that exist: every command line they hold parses with the real `fi-spark` parser, every script is in the repo."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from fi_spark.cli import build_parser
from fi_spark.stages.registry import STAGES

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def console_scripts() -> dict[str, str]:
    """name -> module:function from setup.py's entry_points."""
    text = (REPO / "setup.py").read_text(encoding="utf-8")
    block = re.search(r'"console_scripts":\s*\[([^\]]*)\]', text)
    assert block, "setup.py declares console_scripts"
    pairs = re.findall(r'"([\w-]+)\s*=\s*([\w.]+:\w+)"', block.group(1))
    return dict(pairs)


def resolve(target: str) -> Any:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def parses(argv: list[str]) -> Any:
    """The namespace fi-spark's own parser makes of argv (argparse exits on anything it does not know)."""
    return build_parser().parse_args(argv)


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "databricks" / "databricks.yml").read_text(encoding="utf-8"))


def substitute(value: str, bundle: dict[str, Any]) -> str:
    """${var.name} -> the variable's default, failing on a variable the bundle does not declare."""

    def one(m: re.Match) -> str:
        assert m.group(1) in bundle["variables"], f"undeclared bundle variable {m.group(1)}"
        return str(bundle["variables"][m.group(1)]["default"])

    return re.sub(r"\$\{var\.(\w+)\}", one, value)


def test_console_script_resolves_to_the_cli() -> None:
    """The wheel's `fi-spark` entry point names a function that exists."""
    scripts = console_scripts()
    assert scripts == {"fi-spark": "fi_spark.cli:main"}
    assert callable(resolve(scripts["fi-spark"]))


def wheel_tasks(bundle: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job, task) for job, spec in bundle["resources"]["jobs"].items() for task in spec["tasks"]]


def test_bundle_wheel_tasks_name_the_entry_point_and_valid_arguments(bundle: dict[str, Any]) -> None:
    """Every wheel task calls the `fi-spark` console script with arguments its parser accepts."""
    assert bundle["artifacts"]["fi_spark_wheel"]["build"] == "python -m build --wheel"
    assert (DEPLOY / "databricks" / bundle["artifacts"]["fi_spark_wheel"]["path"] / "setup.py").is_file()
    tasks = wheel_tasks(bundle)
    assert len(tasks) == len(STAGES) + 2
    for job, task in tasks:
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == "fi_spark" and wheel["entry_point"] in console_scripts(), (job, task)
        args = parses([substitute(p, bundle) for p in wheel["parameters"]])
        assert args.profile == "databricks" and args.output == bundle["variables"]["output"]["default"]


def test_bundle_has_one_task_per_stage_in_pipeline_order(bundle: dict[str, Any]) -> None:
    """fi_spark_stages runs each stage as its own task, each depending on the one before."""
    tasks = bundle["resources"]["jobs"]["fi_spark_stages"]["tasks"]
    assert [t["python_wheel_task"]["parameters"][0] for t in tasks] == [s.command for s in STAGES]
    assert [t.get("depends_on") for t in tasks] == [None] + [[{"task_key": t["task_key"]}] for t in tasks[:-1]]


def test_bundle_cluster_and_serverless_variants(bundle: dict[str, Any]) -> None:
    """The cluster jobs use a declared job cluster on a supported runtime; the serverless job uses an environment."""
    jobs = bundle["resources"]["jobs"]
    for name in ("fi_spark_stages", "fi_spark_pipeline"):
        clusters = {c["job_cluster_key"]: c["new_cluster"] for c in jobs[name]["job_clusters"]}
        for task in jobs[name]["tasks"]:
            assert task["job_cluster_key"] in clusters
            assert task["libraries"] == [{"whl": "../../dist/*.whl"}]
    runtime = substitute(jobs["fi_spark_pipeline"]["job_clusters"][0]["new_cluster"]["spark_version"], bundle)
    assert (15, 4) <= tuple(int(x) for x in runtime.split(".")[:2]) < (18, 0)
    serverless = jobs["fi_spark_pipeline_serverless"]
    assert "job_clusters" not in serverless
    envs = {e["environment_key"]: e["spec"] for e in serverless["environments"]}
    (task,) = serverless["tasks"]
    assert envs[task["environment_key"]]["dependencies"] == ["../../dist/*.whl"]
    assert task["python_wheel_task"]["parameters"][0] == "pipeline"


def submit_conf(args: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for flag, a in zip(args, args[1:], strict=False) if flag == "--conf")


DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def test_emr_step_runs_the_pipeline_job_with_delta_and_the_packed_python() -> None:
    """The EMR step submits jobs/pipeline.py with Delta settings and the packed environment's Python."""
    (step,) = json.loads((DEPLOY / "emr" / "step.json").read_text(encoding="utf-8"))
    assert step["Type"] == "Spark" and step["ActionOnFailure"] in ("CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER")
    args = step["Args"]
    script = next(a for a in args if a.endswith(".py"))
    assert script.endswith("/jobs/pipeline.py") and (REPO / "jobs" / "pipeline.py").is_file()
    submit, job_args = args[: args.index(script)], args[args.index(script) + 1 :]
    conf = submit_conf(submit)
    assert DELTA_CONF.items() <= conf.items()
    assert conf["spark.executorEnv.PYSPARK_PYTHON"] == conf["spark.yarn.appMasterEnv.PYSPARK_PYTHON"]
    assert conf["spark.executorEnv.PYSPARK_PYTHON"].startswith("./environment/")
    assert submit[submit.index("--archives") + 1].endswith("#environment")
    assert parses(["pipeline", *job_args]).profile == "emr"


def test_emr_serverless_job_run_matches_the_step() -> None:
    """The EMR Serverless request submits the same job with the same Delta and Python settings."""
    run = json.loads((DEPLOY / "emr" / "serverless-job-run.json").read_text(encoding="utf-8"))
    assert {"applicationId", "executionRoleArn", "jobDriver"} <= set(run)
    submit = run["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"].endswith("/jobs/pipeline.py")
    conf = submit_conf(shlex.split(submit["sparkSubmitParameters"]))
    assert DELTA_CONF.items() <= conf.items()
    assert conf["spark.archives"].endswith("#environment")
    python = "./environment/bin/python"
    assert conf["spark.emr-serverless.driverEnv.PYSPARK_PYTHON"] == conf["spark.executorEnv.PYSPARK_PYTHON"] == python
    assert parses(["pipeline", *submit["entryPointArguments"]]).output.startswith("s3://")


def test_pyfiles_zip_holds_the_package_and_its_conf(tmp_path: Path) -> None:
    """The --py-files zip is importable on its own and carries the profiles and prompts, no bytecode."""
    sys.path.insert(0, str(DEPLOY))
    try:
        make_pyfiles = importlib.import_module("make_pyfiles")
    finally:
        sys.path.remove(str(DEPLOY))
    zipped = make_pyfiles.make_zip(tmp_path / "fi_spark.zip")
    names = set(zipfile.ZipFile(zipped).namelist())
    assert {"fi_spark/__init__.py", "fi_spark/cli.py", "fi_spark/conf/local.yaml", "fi_spark/conf/emr.yaml"} <= names
    assert {f"fi_spark/conf/prompts/{p.name}" for p in (REPO / "conf" / "prompts").glob("*.yaml")} <= names
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    code = "import fi_spark.config as c; print(c.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(zipped)}, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(zipped / "fi_spark" / "config" / "__init__.py")


@pytest.mark.slow
def test_wheel_builds_with_the_console_script_and_conf(tmp_path: Path) -> None:
    """`python -m build --wheel` makes a wheel whose entry point, profiles and prompts are inside, and not the test
    kit (fi_spark_testkit, the fault-injecting server); no pyspark pin."""
    out = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = tmp_path.glob("fi_spark-*.whl")
    zf = zipfile.ZipFile(wheel)
    names = set(zf.namelist())
    assert {"fi_spark/cli.py", "fi_spark/conf/local.yaml", "fi_spark/conf/prompts/judge.v1.yaml"} <= names
    assert {"fi_spark/serving/local.py", "fi_spark/serving/probe.py", "fi_spark/llm/client.py"} <= names
    testkit = [n for n in names if n.startswith("fi_spark_testkit/") or "fault_server" in n or "testserver" in n]
    assert not testkit, testkit  # the fault-injecting server stays with the tests
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "fi-spark = fi_spark.cli:main" in zf.read(entry).decode()
    requires = [line for line in zf.read(meta).decode().splitlines() if line.startswith("Requires-Dist: pyspark")]
    assert requires and all("extra ==" in line for line in requires)


def deploy_commands(bundle: dict[str, Any]) -> dict[str, list[str]]:
    """Every command line the deploy files hold (bundle tasks with variables and {{job.run_id}} filled in)."""
    commands = {
        f"{job}.{task['task_key']}": [
            substitute(p, bundle).replace("{{job.run_id}}", "91731") for p in task["python_wheel_task"]["parameters"]
        ]
        for job, task in wheel_tasks(bundle)
    }
    (step,) = json.loads((DEPLOY / "emr" / "step.json").read_text(encoding="utf-8"))
    script = next(a for a in step["Args"] if a.endswith(".py"))
    commands["emr step"] = ["pipeline", *step["Args"][step["Args"].index(script) + 1 :]]
    serverless = json.loads((DEPLOY / "emr" / "serverless-job-run.json").read_text(encoding="utf-8"))
    commands["emr serverless"] = ["pipeline", *serverless["jobDriver"]["sparkSubmit"]["entryPointArguments"]]
    return commands


def test_every_deploy_command_names_its_tables_and_a_store_that_outlives_the_job(
    bundle: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each job registers its tables by name and tracks to a store the tracking-URI check accepts for its
    remote output (the fallback, a sqlite file in the job's working directory, is refused)."""
    from fi_spark.cli import resolve_config
    from fi_spark.run.tracking_store import resolve_tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "1")  # as under spark-submit: engine.mode=cluster
    commands = deploy_commands(bundle)
    assert len(commands) == len(STAGES) + 4
    for where, argv in commands.items():
        args = parses(argv)
        config = resolve_config(args)
        assert config.tables.schema == "fi_spark", where
        assert config.tables.catalog == ("main" if where.startswith("fi_spark") else None), where
        assert resolve_tracking_uri(config, args.output)[0] in ("databricks", "http://mlflow.internal:5000"), where


def test_stage_tasks_of_one_job_run_share_a_run_group(bundle: dict[str, Any]) -> None:
    """The per-stage job tags every task with its job run id, so their stage runs nest under one parent."""
    for job, task in wheel_tasks(bundle):
        sets = [p for p in task["python_wheel_task"]["parameters"] if p.startswith("tracking.run_group=")]
        assert sets == (["tracking.run_group={{job.run_id}}"] if job == "fi_spark_stages" else []), (job, task)
