"""Connected components of an undirected graph given as an edge DataFrame, with joins only.

Consumes ``edges (src string, dst string)``; produces ``(node string, component string)`` for every
node that appears in an edge, where ``component`` is the smallest node id of its component -- so the
result depends only on the graph, never on partitioning, engine or run.

Algorithm: min-label propagation with pointer jumping. Each node starts with the smallest id among
itself and its neighbours; every round (1) a node takes the smallest label among its neighbours and
(2) jumps to its label's label. Labels only decrease and are always node ids of the component, so at a
fixed point they are constant over each component and equal to its smallest id. Pointer jumping
makes long chains converge in about log2(length) rounds instead of length rounds; near-duplicate
graphs built from LSH buckets (every member linked to the bucket's smallest id) are shallow and
typically settle in 2-4 rounds.

Each round is written out and read back through ``checkpoint`` (Parquet under the stage's work
folder): Sail ignores ``cache()`` and has no ``localCheckpoint``, and without truncation the plan of
round k would contain every earlier round. Convergence is checked by counting changed labels -- one
small aggregation per round; nothing but that count reaches the driver. No GraphFrames, no RDDs.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fi_spark import storage

Checkpoint = Callable[[DataFrame, str], DataFrame]


def parquet_checkpoint(spark: SparkSession, root: str) -> Checkpoint:
    """A Checkpoint writing each frame to ``<root>/<name>`` as Parquet (overwritten) and reading it back."""

    def checkpoint(df: DataFrame, name: str) -> DataFrame:
        path = storage.join(root, name)
        df.write.mode("overwrite").parquet(path)
        back = spark.read.parquet(path)  # Sail writes no file for an empty frame: keep its schema
        return back if back.columns else spark.createDataFrame([], df.schema)

    return checkpoint


class ComponentsDidNotConverge(RuntimeError):
    """Labels still changed after max_iterations rounds (a graph with an extremely long chain)."""


def symmetric_edges(edges: DataFrame) -> DataFrame:
    """Both directions of every edge, self-loops and repeats removed: (src, dst)."""
    pairs = edges.select(F.col("src").cast("string"), F.col("dst").cast("string")).filter(F.col("src") != F.col("dst"))
    return pairs.unionByName(pairs.select(F.col("dst").alias("src"), F.col("src").alias("dst"))).distinct()


def connected_components(
    edges: DataFrame, checkpoint: Checkpoint, max_iterations: int = 40, name: str = "components"
) -> tuple[DataFrame, int]:
    """((node, component), rounds used) for the graph ``edges (src, dst)``; see the module docstring."""
    both = checkpoint(symmetric_edges(edges), f"{name}/edges")
    labels = both.groupBy("src").agg(F.min("dst").alias("nbr_min"))
    labels = labels.select(F.col("src").alias("node"), F.least("src", "nbr_min").alias("label"))
    labels = checkpoint(labels, f"{name}/round_0")
    for round_no in range(1, max_iterations + 1):
        updated = _round(both, labels)
        updated = checkpoint(updated, f"{name}/round_{round_no}")
        changed = updated.filter(F.col("changed")).count()
        labels = updated.select("node", "label")
        if changed == 0:
            return labels.withColumnRenamed("label", "component"), round_no
    raise ComponentsDidNotConverge(
        f"connected components: labels still changing after {max_iterations} rounds; "
        "raise near_dedup.max_iterations (a very long chain of near-duplicates?)"
    )


def _round(both: DataFrame, labels: DataFrame) -> DataFrame:
    """One propagation + pointer-jumping step: (node, label, changed)."""
    nbr_labels = both.join(labels.select(F.col("node").alias("dst"), F.col("label").alias("nbr_label")), "dst")
    nbr_min = nbr_labels.groupBy("src").agg(F.min("nbr_label").alias("nbr_min"))
    propagated = labels.join(nbr_min.withColumnRenamed("src", "node"), "node", "left").select(
        "node",
        F.col("label").alias("old"),
        F.least("label", F.coalesce("nbr_min", "label")).alias("prop"),
    )
    # pointer jumping: follow the (old) label of the node named by the propagated label
    jump = labels.select(F.col("node").alias("prop"), F.col("label").alias("jump"))
    out = propagated.join(jump, "prop", "left").select(
        "node", F.least("prop", F.coalesce("jump", "prop")).alias("label"), "old"
    )
    return out.select("node", "label", (F.col("label") != F.col("old")).alias("changed"))
