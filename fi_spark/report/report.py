"""Stage `report`: the run's HTML report with PNG plots, built from small aggregations of its tables.

Reads every stage table that exists under the output folder (missing ones are named in the report),
writes `<output>/report/report.html` + `*.png` (or `report.location`), and returns the files as
artifacts so the pipeline logs them to its MLflow run, with the funnel and the cost accounting
(fi_spark.cost: `cost.<stage>.*`, per kept pair and estimated GPU-hours / $) as metrics. It writes no table:
rows in = rows out = 0.
"""

from __future__ import annotations

import os
import re
import time

from fi_spark.cost import cost_metrics
from fi_spark.report import build_report
from fi_spark.stages.base import PipelineLayout, StageContext, StageResult, StageTables

STAGE = "report"
TABLES = StageTables()  # reads every table that exists; writes the report files


def run(ctx: StageContext, layout: PipelineLayout) -> StageResult:
    started = time.time()
    files = build_report(ctx.store, ctx.config, ctx.output, layout, ctx.work_dir)
    ctx.log.info("report written to %s (%d plots)", files.location, len(files.plots))
    artifacts = {"report": os.path.dirname(files.html)}  # a folder: logged as the run's report/ artifact dir
    funnel = {f"funnel.{r.unit}.{_slug(r.step)}": float(r.rows) for r in files.data.funnel}
    return StageResult(
        stage=STAGE,
        rows_in=0,
        rows_out=0,
        metrics={"plots": float(len(files.plots)), **funnel, **cost_metrics(files.data.cost)},
        artifacts=artifacts,
        seconds=time.time() - started,
    )


def _slug(text: str) -> str:
    """A metric-name-safe form of a funnel step ('score >= 3' -> 'score_3'): MLflow allows few symbols."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
