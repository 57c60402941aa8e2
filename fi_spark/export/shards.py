"""Write one dataset shard per call, from the shard's rows (used inside `groupBy(split, shard).applyInPandas`).

Consumes all rows of one (split, shard) -- the record columns plus `split`, `shard`, `shards` -- and
writes them to `data/<split>-<shard>-of-<shards>.<ext>` under the export location in every configured
format; returns one statistics row per file: split, shard, file, format, rows, tokens, bytes. The
driver collects only those rows (one per file), never the records.

Why grouped and not per partition: a `repartition` by (split, shard) followed by `mapInArrow` does not
promise one call per partition on every engine (Sail split one shard over two calls, and the second
file overwrote the first), while a grouped map promises that a group's rows arrive in one call. The
cost is that one shard is held in memory per task, which `export.rows_per_shard` bounds.

Why not `DataFrame.write`: Spark names files `part-<uuid>`, cannot write a file per shard with a chosen
name, and would need a second pass to count tokens per shard. Files go through `pyarrow.fs` so local
paths and s3:// work alike; a retried task rewrites the same names, so a retry cannot leave duplicates.

Token counts use the tokenizer named by `export.tokenizer` (fi_spark.text.tokenizer, loaded once per
process) over the text of every turn, without special tokens or a chat template: a count of content
tokens, stated as such in the dataset card.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fi_spark import storage
from fi_spark.export.records import shard_name

HELPER_COLUMNS = ("split", "shard", "shards")
STATS_SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("shard", pa.int32()),
        ("file", pa.string()),
        ("format", pa.string()),
        ("rows", pa.int64()),
        ("tokens", pa.int64()),
        ("bytes", pa.int64()),
    ]
)
EXTENSIONS = {"parquet": "parquet", "jsonl": "jsonl"}


def count_tokens(texts: list[str], tokenizer_name: str) -> int:
    """Content tokens of `texts` with the named tokenizer (0 for an empty list)."""
    if not texts:
        return 0
    from fi_spark.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    return sum(len(enc.ids) for enc in tokenizer.encode_batch(texts, add_special_tokens=False))


class ShardWriter:
    """Writes shards; `write_frame` is the body of an `applyInPandas` over (split, shard) groups."""

    def __init__(self, location: str, formats: Iterable[str], tokenizer_name: str, schema: pa.Schema) -> None:
        self.location = location.rstrip("/")
        self.formats = tuple(formats)
        unknown = set(self.formats) - set(EXTENSIONS)
        if unknown or not self.formats:
            raise ValueError(f"export formats {sorted(unknown) or '[]'}: choose from {sorted(EXTENSIONS)}")
        self.tokenizer_name = tokenizer_name
        self.schema = schema  # Arrow schema of the record columns (helper columns excluded)

    def write_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One group's rows (pandas, as applyInPandas gives them) -> its statistics rows."""
        if frame.empty:
            return pd.DataFrame(columns=STATS_SCHEMA.names)
        split, shard, shards = str(frame["split"].iloc[0]), int(frame["shard"].iloc[0]), int(frame["shards"].iloc[0])
        records = frame.drop(columns=list(HELPER_COLUMNS)).sort_values("id", kind="stable")
        table = pa.Table.from_pandas(records, schema=self.schema, preserve_index=False)
        return pd.DataFrame(self.write_table(table, split, shard, shards), columns=STATS_SCHEMA.names)

    def write_table(self, table: pa.Table, split: str, shard: int, shards: int) -> list[dict[str, object]]:
        """Write one shard's rows in every format; one statistics dict per file."""
        fs, root = storage.filesystem(self.location)
        fs.create_dir(f"{root}/data", recursive=True)
        rows = table.to_pylist()
        contents = [turn["content"] for row in rows for turn in (row.get("messages") or []) if turn.get("content")]
        tokens = count_tokens(contents, self.tokenizer_name)
        stats: list[dict[str, object]] = []
        for fmt in self.formats:
            name = f"data/{shard_name(split, shard, shards, EXTENSIONS[fmt])}"
            path = f"{root}/{name}"
            if fmt == "parquet":
                pq.write_table(table, path, filesystem=fs)
            else:
                text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
                with fs.open_output_stream(path) as out:
                    out.write(text.encode("utf-8"))
            size = fs.get_file_info(path).size or 0
            stats.append(
                {"split": split, "shard": shard, "file": name, "format": fmt, "rows": len(rows), "tokens": tokens,
                 "bytes": size}
            )  # fmt: skip
        return stats
