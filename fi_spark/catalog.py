"""Stage tables by name: each table at its output path registered in a catalog, with comments, and the kept views.

With ``tables.schema`` set, every table a stage writes is registered as an *external* table over its folder
(``CREATE TABLE IF NOT EXISTS <name> USING delta|parquet LOCATION '<output>/tables/<table>'``), so
``SELECT count(*) FROM main.fi_spark.judged`` works on Databricks (Unity Catalog: ``tables.catalog=main``,
three-level names), on EMR (Glue / Hive metastore: ``tables.catalog`` null, two-level names) and in the
embedded engine's session catalog. The data never moves: the folder stays the one storage layer
(fi_spark.tables) and the catalog only names it, so a registration can be dropped and re-made at no cost.

Comments come from fi_spark.schemas (``TableSpec.doc`` and ``column_docs``). Engines differ in how a comment
can be attached: Sail and classic Spark take a column list with comments in ``CREATE TABLE``, while Delta
refuses a column list whose comments differ from the stored schema, and then takes ``ALTER TABLE ... ALTER
COLUMN ... COMMENT`` instead. So the column-list form is tried first, the plain form plus per-column ALTERs
second; a step the engine does not support is logged once and skipped (a name without comments still works).

Two views apply ``judge.threshold`` so no reader re-applies it by hand (re-created on every registration,
so a changed threshold shows at the next stage run or ``explore.view_run``):

- ``judged_kept``: the verdicts at or above the threshold, with the threshold as a column;
- ``pairs_kept``: those pairs, with their verdict. The exported set additionally applies each document's token
  budget (``match.token_budget``, fi_spark.export.lineage.final_pairs), a first-fit rule SQL cannot express.

A name the catalog already holds at another location belongs to another output folder: registration refuses
with one sentence (``CatalogConflictError``) rather than re-pointing another run's tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fi_spark import storage
from fi_spark.config import ConfigError, TablesConfig
from fi_spark.schemas import ALL_TABLES, JUDGED, PAIRS, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from fi_spark.stages.base import StageContext
    from fi_spark.tables import TableStore

log = logging.getLogger(__name__)

KEPT_VIEWS = ("judged_kept", "pairs_kept")
_SAID: set[tuple[int, str]] = set()  # (session, step) the engine refused, already logged: one line per session


class CatalogConflictError(ConfigError):
    """The catalog already names a table of another output folder."""


def qualified(cfg: TablesConfig, name: str) -> str:
    """`catalog`.`schema`.`name` (or two levels without a catalog), each part quoted."""
    parts = [p for p in (cfg.catalog, cfg.schema, name) if p]
    return ".".join(f"`{p}`" for p in parts)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Catalog:
    """Registers a run's tables under ``tables.catalog`` / ``tables.schema``; a no-op when no schema is set."""

    def __init__(self, spark: SparkSession, store: TableStore, cfg: TablesConfig, threshold: float) -> None:
        self.spark = spark
        self.store = store
        self.cfg = cfg
        self.threshold = float(threshold)
        self.enabled = cfg.schema is not None
        self._schema_ready = False

    @classmethod
    def of(cls, ctx: StageContext) -> Catalog:
        return cls(ctx.spark, ctx.store, ctx.config.tables, ctx.config.judge.threshold)

    def name(self, table: str) -> str:
        return qualified(self.cfg, table)

    def register_existing(self) -> list[str]:
        """Register every table the output folder holds (a run opening an earlier run's output)."""
        if not self.enabled:
            return []
        return self.register(spec for spec in ALL_TABLES.values() if self.store.exists(spec))

    def register(self, specs: Iterable[TableSpec]) -> list[str]:
        """Register these tables (those written so far), then the kept views when pairs and judged exist."""
        if not self.enabled:
            return []
        self._ensure_schema()
        done = [self.name(spec.name) for spec in specs if self._register_table(spec)]
        if self._exists(self.name(PAIRS.name)) and self._exists(self.name(JUDGED.name)):
            done += [self.name(v) for v in KEPT_VIEWS if self._register_view(v)]
        if done:
            log.info("catalog: %d tables and views by name in %s", len(done), self.where)
        return done

    @property
    def where(self) -> str:
        """The quoted catalog.schema (or schema) the names live in."""
        return ".".join(f"`{p}`" for p in (self.cfg.catalog, self.cfg.schema) if p)

    # ---- steps
    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        self._try("create the schema", f"CREATE SCHEMA IF NOT EXISTS {self.where}")
        self._schema_ready = True

    def _register_table(self, spec: TableSpec) -> bool:
        if self.store.managed_in is not None:  # managed: the write made the table; add what describes it
            return self._describe_managed(spec)
        name, path = self.name(spec.name), self.store.path(spec)
        location = f"USING {self.store.fmt} COMMENT {_literal(spec.doc)} LOCATION {_literal(path)}"
        stored = self.spark.read.format(self.store.fmt).load(path).schema  # engines compare types and nullability
        columns = ", ".join(
            f"`{f.name}` {f.dataType.simpleString()}{'' if f.nullable else ' NOT NULL'} "
            f"COMMENT {_literal(spec.column_docs.get(f.name, ''))}"
            for f in stored.fields
        )
        existed = self._exists(name)
        if not existed and not self._try(None, f"CREATE TABLE IF NOT EXISTS {name} ({columns}) {location}"):
            if not self._try("create a table", f"CREATE TABLE IF NOT EXISTS {name} {location}"):
                return False
            for column, text in spec.column_docs.items():  # Delta: comments on an existing schema
                if not self._try(
                    "add column comments", f"ALTER TABLE {name} ALTER COLUMN `{column}` COMMENT {_literal(text)}"
                ):
                    break
        self._check_location(spec, name, path)
        return True

    def _describe_managed(self, spec: TableSpec) -> bool:
        name = self.name(spec.name)
        if not self._exists(name):
            return False
        if self.spark.catalog.getTable(name.replace("`", "")).description == spec.doc:
            return True  # described by an earlier stage or run: no ALTER per column again
        if not self._try(None, f"COMMENT ON TABLE {name} IS {_literal(spec.doc)}"):
            self._try("comment a table", f"ALTER TABLE {name} SET TBLPROPERTIES ('comment' = {_literal(spec.doc)})")
        for column, text in spec.column_docs.items():
            if not self._try(
                "add column comments", f"ALTER TABLE {name} ALTER COLUMN `{column}` COMMENT {_literal(text)}"
            ):
                break
        return True

    def _register_view(self, view: str) -> bool:
        t, judged, pairs = repr(self.threshold), self.name(JUDGED.name), self.name(PAIRS.name)
        if view == "judged_kept":
            comment = f"verdicts at or above judge.threshold = {t}"
            query = f"SELECT *, CAST({t} AS DOUBLE) AS threshold FROM {judged} WHERE score >= {t}"
        else:
            comment = f"pairs whose judge score is at or above {t}; export also applies match.token_budget"
            query = (
                f"SELECT p.*, j.score AS judge_score, j.expected_score AS judge_expected_score, "
                f"j.rationale AS judge_rationale, j.model AS judge_model, j.prompt_version AS judge_prompt, "
                f"CAST({t} AS DOUBLE) AS threshold FROM {pairs} p JOIN {judged} j ON p.pair_id = j.pair_id "
                f"WHERE j.score >= {t}"
            )
        sql = f"CREATE OR REPLACE VIEW {self.name(view)} COMMENT {_literal(comment)} AS {query}"
        return self._try("create a view", sql)

    def _exists(self, name: str) -> bool:
        try:
            return bool(self.spark.catalog.tableExists(name.replace("`", "")))
        except Exception:  # noqa: BLE001 - an engine without the call: CREATE ... IF NOT EXISTS decides
            return False

    def _check_location(self, spec: TableSpec, name: str, path: str) -> None:
        """Refuse a name registered at another folder (another run's output); engines that do not report a
        table's location (Sail) are not checked."""
        try:
            rows = self.spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
        except Exception:  # noqa: BLE001 - no DESCRIBE EXTENDED: nothing to compare
            return
        found = next((str(r[1]) for r in rows if str(r[0]).strip() == "Location"), None)
        if found is None or _same_location(found, path):
            return
        raise CatalogConflictError(
            f"catalog table {name} points at {found}, not this run's {path}: it belongs to another output folder; "
            f"set tables.schema to a schema of its own for this output (or DROP TABLE {name} if that run is gone)"
        )

    def _try(self, step: str | None, sql: str) -> bool:
        """Run one statement; False when the engine refuses it (logged once per step, unless `step` is None)."""
        try:
            self.spark.sql(sql).collect()
            return True
        except Exception as exc:  # noqa: BLE001 - unsupported statements have engine-specific exception types
            if step is not None and (id(self.spark), step) not in _SAID:
                _SAID.add((id(self.spark), step))
                reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                log.warning("catalog: this engine cannot %s (%s); continuing without it", step, reason)
            return False


def _same_location(found: str, path: str) -> bool:
    def norm(p: str) -> str:
        p = p.rstrip("/")
        for prefix in ("file://", "file:"):
            if p.startswith(prefix):
                p = p[len(prefix) :]
        return p if storage.is_remote(p) else "/" + p.lstrip("/")

    return norm(found) == norm(path)
