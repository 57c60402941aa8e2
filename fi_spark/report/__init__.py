"""The run report: `build_report` reads the run's tables, draws PNG plots and writes report.html next to them.

Layout: `data` (plain values), `collect` (Spark aggregations -> data), `plots` (matplotlib, Agg),
`html` (the page). The report is written to a local folder first; when the destination is remote
(s3://) the files are copied there with pyarrow's filesystem layer, and the local copies are returned
so the pipeline can log them to MLflow.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fi_spark import storage

if TYPE_CHECKING:
    from fi_spark.config import Config
    from fi_spark.report.data import ReportData
    from fi_spark.stages.base import PipelineLayout
    from fi_spark.tables import TableStore


@dataclass
class ReportFiles:
    html: str  # local path of report.html
    plots: dict[str, str]  # plot name -> local PNG path
    location: str  # where the report was published (local folder or s3:// prefix)
    data: ReportData


def render_report(data: ReportData, config: Config, folder: str) -> ReportFiles:
    """Draw the plots and write report.html into the local `folder` (pure: no Spark)."""
    from fi_spark.report import plots as p
    from fi_spark.report.html import render_html

    os.makedirs(folder, exist_ok=True)
    scale = (config.judge.scale_min, config.judge.scale_max)

    def at(name: str) -> str:
        return os.path.join(folder, f"{name}.png")

    drawn = {
        "funnel": p.plot_funnel(data.funnel, at("funnel")),
        "rejects": p.plot_rejects(data.rejects, at("rejects")),
        "dedup": p.plot_dedup(data.dedup, at("dedup")),
        "chunk_tokens": p.plot_histogram(data.chunk_tokens, at("chunk_tokens"), "Chunk length", "tokens per chunk"),
        "match_scores": p.plot_histogram(data.match_scores, at("match_scores"), "Match scores", "cosine similarity"),
        "template_usage": p.plot_template_usage(data.template_usage, at("template_usage")),
        "grounding": p.plot_histogram(
            data.grounding,
            at("grounding"),
            "Grounding",
            "share of answer tokens in verbatim excerpts",
            data.grounding_threshold,
            "min_grounding",
        ),
        "judge": p.plot_scores(data.judge_scores, data.judge_threshold, at("judge"), scale),
        "llm": p.plot_llm(data.llm, at("llm")),
        "cost": p.plot_cost(data.cost, at("cost")),
    }
    for stale in set(drawn) - {k for k, v in drawn.items() if v}:  # a re-render must not show an old plot
        if os.path.exists(at(stale)):
            os.remove(at(stale))
    html_path = os.path.join(folder, "report.html")
    with open(html_path, "w", encoding="utf-8") as fh:
        fh.write(render_html(data, drawn, scale))
    return ReportFiles(html_path, {k: v for k, v in drawn.items() if v}, folder, data)


def build_report(
    store: TableStore, config: Config, output: str, layout: PipelineLayout, work_dir: str | None = None
) -> ReportFiles:
    """Aggregate the tables under `output`, render the report and publish it to `report.location`."""
    from fi_spark.report.collect import collect_report_data

    data = collect_report_data(store, config, config.export.where(output), layout)
    destination = config.report.where(output)
    remote = storage.is_remote(destination)
    folder = tempfile.mkdtemp(prefix="fi-report-", dir=work_dir) if remote else storage.local_path(destination)
    files = render_report(data, config, folder)
    if remote:
        for name in os.listdir(folder):
            storage.copy_file(os.path.join(folder, name), storage.join(destination, name))
        files.location = destination
    return files
