"""Explore a finished run from a notebook or a shell: its tables as SQL views, the funnel, Delta history and
time travel. The notebooks under notebooks/ call these; the jobs never do.

``view_run(folder)`` starts an engine (the profile's, embedded by default), opens the run's table store
and registers one temporary view per table that exists, named as the table (``pairs``, ``pair_rejects``,
...), plus ``lineage``: every pair joined to its document, chunk, template and verdict
(fi_spark.export.lineage), so a question about the run is one ``run.sql(...)``. With ``tables.schema`` set
(``tables.catalog`` too on Unity Catalog) the tables are also reached by their catalog names, as jobs and
dashboards reach them: on a cluster they are already registered, on the embedded engine ``view_run``
registers them in its session catalog (fi_spark.catalog; no table data is written), and ``run.table(name)``
gives the name to put in SQL, e.g. ``fi_spark.pairs_kept``.

Time travel reads an earlier version of a Delta table with Spark's ``versionAsOf`` (Sail and Delta Lake
both support it); the list of versions comes from delta-rs (``DeltaTable.history()``), because Sail 0.7
has no ``DESCRIBE HISTORY``. Comparing two pipeline runs is fi_spark.run.history (the MLflow client API).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fi_spark import storage
from fi_spark.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from fi_spark.stages.base import StageContext

log = logging.getLogger(__name__)

LINEAGE_VIEW = "lineage"
REJECT_TABLES = ("query_rejects", "template_rejects", "doc_rejects", "match_rejects", "pair_rejects")


@dataclass
class RunView:
    """An opened run: its stage context (engine, config, store) and the views registered for SQL."""

    ctx: StageContext
    views: dict[str, int] = field(default_factory=dict)  # view name -> rows
    names: dict[str, str] = field(default_factory=dict)  # table or kept view -> its catalog name (tables.schema)

    def table(self, name: str) -> str:
        """The name to query `name` by: its catalog name when registered, else the temporary view."""
        return self.names.get(name, name)

    @property
    def spark(self) -> Any:
        return self.ctx.spark

    @property
    def config(self) -> Config:
        return self.ctx.config

    def sql(self, query: str) -> DataFrame:
        """A Spark SQL query over the registered views."""
        return self.ctx.spark.sql(query)

    def funnel(self) -> pd.DataFrame:
        """The run's funnel (unit, step, rows): the same numbers the report and the dataset card show."""
        import pandas as pd

        from fi_spark.report.collect import Tables, funnel, read_export_stats
        from fi_spark.run.pipeline import layout

        stats = read_export_stats(self.config.export.where(self.ctx.output))
        exported = int(stats["rows"]) if stats and "rows" in stats else None
        plan = layout()
        rows = funnel(Tables(self.ctx.store, plan.tables), self.config, exported, plan.funnel)
        return pd.DataFrame([(r.unit, r.step, r.rows) for r in rows], columns=["unit", "step", "rows"])

    def rejects(self) -> DataFrame:
        """Rows dropped, one row per (table_name, reason) over every rejects table, most frequent first."""
        present = [name for name in REJECT_TABLES if name in self.views]
        if not present:
            return self.sql("SELECT 'none' AS table_name, 'none' AS reason, 0L AS rejected LIMIT 0")
        union = " UNION ALL ".join(
            f"SELECT '{t}' AS table_name, reason, count(*) AS rejected FROM {t} GROUP BY reason" for t in present
        )
        return self.sql(f"SELECT * FROM ({union}) ORDER BY rejected DESC, table_name, reason")

    def history(self, table: str) -> pd.DataFrame:
        """The Delta versions of `table`, newest first: version, timestamp, operation, rows written."""
        import pandas as pd

        path = self._delta_path(table)
        rows = [
            (
                int(h["version"]),
                pd.Timestamp(h["timestamp"], unit="ms", tz="UTC"),
                h.get("operation"),
                int((h.get("operationMetrics") or {}).get("numOutputRows", 0) or 0),
            )
            for h in storage.delta_history(path)
        ]
        return pd.DataFrame(rows, columns=["version", "timestamp", "operation", "rows_added"])

    def as_of(self, table: str, version: int) -> DataFrame:
        """`table` as it was at Delta `version` (time travel)."""
        return self.ctx.spark.read.format("delta").option("versionAsOf", int(version)).load(self._delta_path(table))

    def added_since(self, table: str, version: int) -> DataFrame:
        """Rows of the current `table` whose key was not in it at `version`."""
        from fi_spark.schemas import ALL_TABLES

        key = list(ALL_TABLES[table].key)
        current = self.ctx.spark.read.format("delta").load(self._delta_path(table))
        return current.join(self.as_of(table, version).select(*key), key, "left_anti")

    def close(self) -> None:
        self.ctx.engine.stop()

    def _delta_path(self, table: str) -> str:
        from fi_spark.schemas import ALL_TABLES

        if self.ctx.store.managed_in is not None:
            raise ConfigError(
                "time travel here reads Delta folders by path; this run's tables are managed tables "
                f"(tables.managed) in {self.ctx.store.managed_in}: use DESCRIBE HISTORY and VERSION AS OF there"
            )
        if self.ctx.store.fmt != "delta":
            raise ConfigError(f"time travel needs Delta tables; this run's tables are {self.ctx.store.fmt}")
        spec = ALL_TABLES.get(table)
        if spec is None or not self.ctx.store.exists(spec):
            raise ConfigError(f"table {table!r} does not exist in this run; it has {', '.join(sorted(self.views))}")
        return self.ctx.store.path(spec)


def view_run(folder: str, profile: str = "local", overrides: Sequence[str] = ()) -> RunView:
    """Start the profile's engine on `folder` (a run's output root) and register its tables as views."""
    from fi_spark import storage
    from fi_spark.catalog import Catalog
    from fi_spark.engine import start_engine
    from fi_spark.stages.base import StageContext

    if not storage.is_remote(folder):
        folder = storage.local_path(folder)
        if not os.path.isdir(os.path.join(folder, "tables")):
            raise ConfigError(f"{folder} holds no run (no tables/ folder): pass the --output of `fi-spark pipeline`")
    config = load_config(profile, list(overrides))
    engine = start_engine(config.engine)
    run = RunView(StageContext.for_output(engine, config, folder, log=log))
    register_views(run)
    catalog = Catalog.of(run.ctx)
    run.names = {name.rsplit(".", 1)[-1].strip("`"): name for name in catalog.register_existing()}
    return run


def tracking_uri(folder: str, profile: str = "local", overrides: Sequence[str] = ()) -> str:
    """The MLflow store a run in `folder` was tracked to: MLFLOW_TRACKING_URI, else tracking.uri, else the folder's."""
    from fi_spark.run.tracking_store import resolve_tracking_uri

    return resolve_tracking_uri(load_config(profile, list(overrides)), folder, reading=True)[0]


def compare(uri: str, experiment: str, a: str, b: str) -> pd.DataFrame:
    """Two pipeline runs side by side (fi_spark.run.history.compare_runs): key, a, b, differs; differences first."""
    import pandas as pd

    from fi_spark.run.history import compare_runs

    rows = [(d.key, d.a, d.b, d.differs) for d in compare_runs(uri, experiment, a, b)]
    return pd.DataFrame(rows, columns=["key", a[:8], b[:8], "differs"])


def register_views(run: RunView) -> dict[str, int]:
    """One temporary view per existing table (and `lineage` when there are pairs); returns view -> rows."""
    from fi_spark.export.lineage import pair_lineage
    from fi_spark.schemas import ALL_TABLES, PAIRS

    store = run.ctx.store
    for name, spec in sorted(ALL_TABLES.items()):
        if store.exists(spec):
            df = store.read(spec)
            df.createOrReplaceTempView(name)
            run.views[name] = df.count()
    if PAIRS.name in run.views:
        lineage = pair_lineage(run.ctx)
        lineage.createOrReplaceTempView(LINEAGE_VIEW)
        run.views[LINEAGE_VIEW] = run.views[PAIRS.name]
    return run.views
