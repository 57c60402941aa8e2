"""Write dataset shards from Arrow record batches, one Spark task at a time (used inside `mapInArrow`).

Consumes batches sorted by (split, shard, id) that carry `split`, `shard`, `shards` and the record
columns; writes each (split, shard) to `data/<split>-<shard>-of-<shards>.<ext>` under the export location
in every configured format, and yields one statistics row per file: split, shard, file, format, rows,
tokens, bytes. The driver collects only those rows (one per file), never the records.

Why a writer of our own instead of `DataFrame.write`: Spark names files `part-<uuid>`, cannot write a
file per shard with a chosen name, and would need a second pass to count tokens per shard. Here one
pass writes the Parquet and JSONL copies and counts tokens as rows stream by. Files go through
`pyarrow.fs` so local paths and s3:// work alike; a retried task rewrites the same names, so a retry
cannot leave duplicates.

Token counts use the tokenizer named by `export.tokenizer` (fi_spark.text.tokenizer, loaded once per
process) over the text of every turn, without special tokens or a chat template: a count of content
tokens, stated as such in the dataset card.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local folder or an s3:// (or other pyarrow-known) URI."""
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def count_tokens(texts: list[str], tokenizer_name: str) -> int:
    """Content tokens of `texts` with the named tokenizer (0 for an empty list)."""
    if not texts:
        return 0
    from fi_spark.text.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    return sum(len(enc.ids) for enc in tokenizer.encode_batch(texts, add_special_tokens=False))


@dataclass
class _OpenShard:
    split: str
    shard: int
    shards: int
    parquet: pq.ParquetWriter | None = None
    jsonl: pa.NativeFile | None = None
    rows: int = 0
    tokens: int = 0
    paths: dict[str, str] = field(default_factory=dict)


class ShardWriter:
    """Writes the shards of one task; `write(batches)` is the body of a `mapInArrow` function."""

    def __init__(self, location: str, formats: Iterable[str], tokenizer_name: str) -> None:
        self.location = location.rstrip("/")
        self.formats = tuple(formats)
        unknown = set(self.formats) - set(EXTENSIONS)
        if unknown or not self.formats:
            raise ValueError(f"export formats {sorted(unknown) or '[]'}: choose from {sorted(EXTENSIONS)}")
        self.tokenizer_name = tokenizer_name
        self._fs: pafs.FileSystem | None = None

    def write(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fs, root = resolve(self.location)
        self._fs = fs
        current: _OpenShard | None = None
        stats: list[dict[str, object]] = []
        for batch in batches:
            if batch.num_rows == 0:
                continue
            keys = list(zip(batch.column("split").to_pylist(), batch.column("shard").to_pylist()))
            start = 0
            while start < len(keys):  # one run of equal (split, shard) at a time; input is sorted by them
                end = start
                while end < len(keys) and keys[end] == keys[start]:
                    end += 1
                part = batch.slice(start, end - start)
                split, shard = keys[start]
                if current is None or (current.split, current.shard) != (split, shard):
                    if current is not None:
                        stats.extend(self._close(fs, current))
                    current = self._open(fs, root, split, int(shard), int(part.column("shards")[0].as_py()))
                self._append(current, part)
                start = end
        if current is not None:
            stats.extend(self._close(fs, current))
        if stats:
            yield pa.RecordBatch.from_pylist(stats, schema=STATS_SCHEMA)

    def _open(self, fs: pafs.FileSystem, root: str, split: str, shard: int, shards: int) -> _OpenShard:
        fs.create_dir(f"{root}/data", recursive=True)
        open_shard = _OpenShard(split, shard, shards)
        for fmt in self.formats:
            open_shard.paths[fmt] = f"{root}/data/{shard_name(split, shard, shards, EXTENSIONS[fmt])}"
        if "jsonl" in self.formats:
            open_shard.jsonl = fs.open_output_stream(open_shard.paths["jsonl"])
        return open_shard

    def _append(self, shard: _OpenShard, part: pa.RecordBatch) -> None:
        records = part.drop_columns(list(HELPER_COLUMNS))
        if "parquet" in self.formats:
            if shard.parquet is None:
                shard.parquet = pq.ParquetWriter(shard.paths["parquet"], records.schema, filesystem=self._fs)
            shard.parquet.write_batch(records)
        rows = records.to_pylist()
        if shard.jsonl is not None:
            text = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
            shard.jsonl.write(text.encode("utf-8"))
        contents = [turn["content"] for row in rows for turn in (row.get("messages") or []) if turn.get("content")]
        shard.rows += len(rows)
        shard.tokens += count_tokens(contents, self.tokenizer_name)

    def _close(self, fs: pafs.FileSystem, shard: _OpenShard) -> list[dict[str, object]]:
        if shard.parquet is not None:
            shard.parquet.close()
        if shard.jsonl is not None:
            shard.jsonl.close()
        out = []
        for fmt, path in shard.paths.items():
            info = fs.get_file_info(path)
            out.append(
                {
                    "split": shard.split,
                    "shard": shard.shard,
                    "file": f"data/{path.rsplit('/', 1)[-1]}",
                    "format": fmt,
                    "rows": shard.rows,
                    "tokens": shard.tokens,
                    "bytes": info.size or 0,
                }
            )
        return out
