"""`fi-spark plan`: estimate a target corpus's LLM cost from a finished sample run (fi_spark.forecast does the sums).

Kept beside fi_spark.cli (which adds it with `add_plan`) so the command-line module stays one screenful per
concern; like the rest of the CLI it imports nothing heavy until the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from fi_spark.config import Config, ConfigError

PLAN_EPILOG = """\
how it estimates (fi_spark.forecast):
  genericize  one request per query (capped by --sample-queries); templates = the sample's valid share
  instantiate one request per match; matches = documents x the sample's matches per document (capped by
              --sample-pairs); pairs = requests x the sample's pass share
  judge       one request per passing pair; kept = requests x the sample's kept share (judge.threshold)
  tokens per request are the sample's per-stage averages from its LLM ledger (llm_responses); instantiate and
  judge prompts move with the shown document tokens (cut at instantiate.max_source_chars / 4).
  GPU time = uncached prompt tokens / prefill rate + generated tokens / generation rate; wall = GPU time / GPUs.
  --self-check re-applies the plan to the sample's own size, with rates fitted to its measured send seconds,
  and prints estimate vs measured per stage.
"""


def add_plan(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], config_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    p = sub.add_parser(
        "plan",
        help="estimate requests, tokens, GPU-hours, wall time and $ for a corpus from a sample run",
        description="Estimate, per LLM stage, what a target corpus costs on a GPU cluster, from the measured pass "
        "rates and tokens per request of a finished sample run (its --output folder). Nothing is sent.",
        epilog=PLAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--from", dest="sample", required=True, metavar="OUTPUT", help="output folder of a sample run")
    p.add_argument("--documents", type=int, help="target corpus: documents after dedup (default: the sample's)")
    p.add_argument("--doc-tokens", type=float, help="target corpus: average tokens per document (default: sample's)")
    p.add_argument("--queries", type=int, help="queries to genericize (default: the sample's queries per document)")
    p.add_argument("--sample-queries", type=int, help="genericize at most this many (templates.sample_queries)")
    p.add_argument("--sample-pairs", type=int, help="instantiate at most this many (instantiate.sample_pairs)")
    from fi_spark.forecast import Cluster  # pure arithmetic, no heavy imports; its defaults are the ones shown

    c = Cluster()
    p.add_argument("--gpus", type=int, default=c.gpus, help=f"GPUs serving the models (default: {c.gpus})")
    p.add_argument(
        "--gen-tokens-per-s",
        type=float,
        default=c.gen_tokens_per_s,
        help=f"generated tokens per s per GPU at full batch (default {c.gen_tokens_per_s:g}: ~4e11 tokens in 1e4 "
        "H100-h)",
    )
    p.add_argument(
        "--prefill-tokens-per-s",
        type=float,
        default=c.prefill_tokens_per_s,
        help=f"uncached prompt tokens per s per GPU (default {c.prefill_tokens_per_s:g}: assumed 10x generation)",
    )
    p.add_argument(
        "--usd-per-gpu-hour", type=float, default=c.usd_per_gpu_hour,
        help=f"price of one GPU-hour (default: {c.usd_per_gpu_hour:g})",
    )  # fmt: skip
    p.add_argument("--self-check", action="store_true", help="re-apply to the sample's own size; compare")
    config_args(p)
    p.set_defaults(handler=_cmd_plan)


def _cmd_plan(args: argparse.Namespace, config: Config) -> int:
    from fi_spark import forecast as plan

    try:
        sample = plan.measure_run(args.sample, config.judge.threshold, config.instantiate.max_source_chars)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if args.self_check:
        prefill, gen = plan.fit_throughput(sample)
        s = sample.stages
        target = plan.Target(sample.documents, sample.doc_tokens, sample.queries,
                             s["genericize"].requests if "genericize" in s else None,
                             s["instantiate"].requests if "instantiate" in s else None)  # fmt: skip
        cluster = plan.Cluster(gpus=1, gen_tokens_per_s=gen, prefill_tokens_per_s=prefill, usd_per_gpu_hour=0.0)
    else:
        docs = args.documents or sample.documents
        per_doc = sample.queries / max(sample.documents, 1)
        queries = args.queries if args.queries is not None else round(per_doc * docs)
        tokens = args.doc_tokens or sample.doc_tokens
        target = plan.Target(docs, tokens, queries, args.sample_queries, args.sample_pairs)
        cluster = plan.Cluster(args.gpus, args.gen_tokens_per_s, args.prefill_tokens_per_s, args.usd_per_gpu_hour)
    rows = plan.estimate(sample, target, cluster)
    print(f"sample {args.sample}: {sample.documents} documents of {sample.doc_tokens:.0f} tokens, {sample.queries} "
          f"queries, {sample.matches} matches")  # fmt: skip
    print(f"target: {target.documents:,} documents of {target.doc_tokens:.0f} tokens, {target.queries:,} queries; "
          f"{cluster.gpus} GPUs at {cluster.gen_tokens_per_s:,.0f} generated / {cluster.prefill_tokens_per_s:,.0f} "
          f"prefill tokens/s, ${cluster.usd_per_gpu_hour}/GPU-hour")  # fmt: skip
    print(plan.render(rows))
    if args.self_check:
        print(f"{'stage':<12}{'est. s':>10}{'measured s':>12}{'error':>8}{'est. req':>10}{'req':>8}")
        for r in rows[:-1]:
            m = sample.stages[r.stage]
            est = r.wall_hours * 3600
            err = (est - m.seconds) / m.seconds if m.seconds else float("nan")
            print(f"{r.stage:<12}{est:>10.0f}{m.seconds:>12.0f}{err:>+8.0%}{r.requests:>10.0f}{m.requests:>8}")
    return 0
