"""Reading and writing stage tables: Delta by default, Parquet where the engine has no Delta.

Tables live under ``<output>/tables/<name>`` (a local folder or an ``s3://`` prefix), or, with
``tables.managed``, as managed tables of the catalog (``tables.catalog`` / ``tables.schema``, written with
``saveAsTable`` and read by name; fi_spark.catalog names the folder tables otherwise). Writes are
idempotent on the table's key (fi_spark.schemas): ``write`` anti-joins the incoming rows against the
keys already stored and appends only the new ones, so a re-run of a stage on the same input adds no
rows and a resumed stage adds only what is missing. Anti-join-then-append was chosen over Delta
MERGE because it behaves the same on Delta and Parquet, and both engines run it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from fi_spark import storage
from fi_spark.config import ConfigError, TablesConfig
from fi_spark.engine import Capabilities
from fi_spark.schemas import ALL_TABLES, TableSpec

log = logging.getLogger(__name__)


def resolve_format(cfg: TablesConfig, caps: Capabilities) -> str:
    """`auto` -> delta where the engine has it; an explicit `delta` on an engine without it is an error."""
    if cfg.format == "auto":
        return "delta" if caps.delta else "parquet"
    if cfg.format == "delta" and not caps.delta:
        raise ConfigError(
            f"tables.format=delta, but the {caps.mode} engine has no Delta support (the delta-spark jars are "
            "missing); use tables.format=parquet or auto, or start Spark with delta-spark configured"
        )
    return cfg.format


@dataclass
class TableStore:
    spark: SparkSession
    root: str  # the run's output folder; tables go under <root>/tables/ (scratch under <root>/_work/)
    fmt: str  # "delta" | "parquet"
    managed_in: str | None = None  # `catalog`.`schema` (quoted) when tables are managed tables there

    @classmethod
    def open(cls, spark: SparkSession, root: str, cfg: TablesConfig, caps: Capabilities) -> TableStore:
        """The store a run's config asks for; managed tables get their schema created here, before any write."""
        if not cfg.managed:
            return cls(spark, root, resolve_format(cfg, caps))
        where = ".".join(f"`{p}`" for p in (cfg.catalog, cfg.schema) if p)
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {where}").collect()
        return cls(spark, root, resolve_format(cfg, caps), where)

    def name(self, spec: TableSpec) -> str:
        """The managed table's name (quoted), for tables.managed."""
        return f"{self.managed_in}.`{spec.name}`"

    def path(self, spec: TableSpec) -> str:
        if self.managed_in is not None:
            raise ValueError(f"table {spec.name} is a managed table ({self.name(spec)}): it has no path of ours")
        return storage.table_path(self.root, spec.name)

    def reader(self, spec: TableSpec) -> DataFrame:
        """The stored table as Spark reads it (by path, or by name when managed); it must exist."""
        if self.managed_in is not None:
            return self.spark.read.table(self.name(spec))
        return self.spark.read.format(self.fmt).load(self.path(spec))

    def by_name(self, name: str) -> DataFrame | None:
        """A table by its name (also one whose spec no module has registered in schemas.ALL_TABLES), or None
        when it was not written: the one way stages, the report and notebooks read a table by name."""
        spec = ALL_TABLES.get(name) or TableSpec(name, StructType([]), ())
        return self.reader(spec) if self.exists(spec) else None

    def exists(self, spec: TableSpec) -> bool:
        """Whether the table has been written; remote tables are asked of Spark, which may see stores
        (dbfs:/, s3 with cluster roles) that fi_spark.storage cannot."""
        if self.managed_in is not None:
            return bool(self.spark.catalog.tableExists(self.name(spec).replace("`", "")))
        path = self.path(spec)
        if not storage.is_remote(path):
            local = storage.local_path(path)
            marker = "_delta_log" if self.fmt == "delta" else ""
            return os.path.isdir(os.path.join(local, marker)) and any(
                not name.startswith(".") for name in os.listdir(local)
            )
        from pyspark.errors import PySparkException

        try:
            self.reader(spec).schema  # noqa: B018 - forces analysis
            return True
        except PySparkException as exc:  # "path does not exist": AnalysisException (classic), a Connect error (Sail)
            log.debug("table %s not readable at %s, taken as not written: %s", spec.name, path, exc)
            return False

    def read(self, spec: TableSpec) -> DataFrame:
        """The table, or an empty frame with its schema when nothing was written yet."""
        if not self.exists(spec):
            return self.spark.createDataFrame([], spec.schema)
        return self.reader(spec)

    def count(self, spec: TableSpec) -> int:
        return self.read(spec).count() if self.exists(spec) else 0

    def write(self, df: DataFrame, spec: TableSpec) -> int:
        """Append the rows of ``df`` whose key is not stored yet; return how many were added."""
        df = conform(df, spec)
        if self.exists(spec):
            before = self.count(spec)
            stored_keys = self.read(spec).select(*spec.key)
            df = df.join(stored_keys, on=list(spec.key), how="left_anti")
        else:
            before = 0
        self._save(df.write.format(self.fmt).mode("append"), spec)
        added = self.count(spec) - before
        where = self.name(spec) if self.managed_in else self.path(spec)
        log.info("table %s: +%d rows (%s, %s)", spec.name, added, self.fmt, where)
        return added

    def _save(self, writer: DataFrameWriter, spec: TableSpec) -> None:
        if self.managed_in is not None:
            writer.saveAsTable(self.name(spec))
        else:
            writer.save(self.path(spec))

    def materialize(self, df: DataFrame, name: str) -> DataFrame:
        """Write an intermediate frame to ``<output>/_work/<name>`` (Parquet, overwritten) and read it back.

        Used instead of ``cache()``, which Sail treats as a no-op: a frame used by several writes is then
        computed once on every engine, and the scratch copy can be inspected after a failed run.
        """
        path = storage.join(self.root, "_work", name)
        df.write.mode("overwrite").parquet(path)
        return read_back(self.spark, path, df)

    def replace(self, df: DataFrame, spec: TableSpec) -> int:
        """Overwrite the whole table (for small derived tables that are recomputed from their inputs)."""
        self._save(conform(df, spec).write.format(self.fmt).mode("overwrite"), spec)
        return self.count(spec)


def read_back(spark: SparkSession, path: str, written: DataFrame) -> DataFrame:
    """The Parquet just written from `written`, with its schema even when it had no rows: Sail writes no file
    for an empty frame and reads the empty folder back without columns."""
    return spark.read.schema(written.schema).parquet(path)


def conform(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Select the spec's columns in order with the spec's types; a missing column is a programming error."""
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise ValueError(f"table {spec.name}: the frame lacks columns {missing} (has {df.columns})")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in spec.schema.fields])
