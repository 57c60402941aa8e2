"""Shard writer and export record rules, without Spark (fi_spark.export.shards / records)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fi_spark.export.records import chat_turns, shard_count, shard_name, split_for, split_unit
from fi_spark.export.shards import ShardWriter, count_tokens

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("shard", pa.int32()),
        ("shards", pa.int32()),
        ("id", pa.string()),
        ("messages", MESSAGES),
        ("grounding", pa.float64()),
    ]
)


def batch(rows: list[tuple[str, int, int, str]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [
            {
                "split": split,
                "shard": shard,
                "shards": shards,
                "id": pid,
                "messages": chat_turns(f"Question {pid}?", f"Answer number {pid}."),
                "grounding": 0.9,
            }
            for split, shard, shards, pid in rows
        ],
        schema=SCHEMA,
    )


RECORDS = pa.schema([f for f in SCHEMA if f.name not in ("split", "shard", "shards")])


def test_writer_writes_one_file_per_format_with_stats(tmp_path):
    """A shard's rows become named Parquet and JSONL files, sorted by id, with rows, tokens and bytes."""
    writer = ShardWriter(str(tmp_path), ["parquet", "jsonl"], "minilm", RECORDS)
    frame = batch([("train", 1, 3, "c"), ("train", 1, 3, "a"), ("train", 1, 3, "b")]).to_pandas()
    stats = writer.write_frame(frame).to_dict("records")
    assert [(s["file"], s["rows"], s["format"]) for s in stats] == [
        ("data/train-00001-of-00003.parquet", 3, "parquet"),
        ("data/train-00001-of-00003.jsonl", 3, "jsonl"),
    ]
    table = pq.read_table(tmp_path / "data/train-00001-of-00003.parquet")
    assert table.column_names == ["id", "messages", "grounding"]
    assert table.column("id").to_pylist() == ["a", "b", "c"]
    lines = (tmp_path / "data/train-00001-of-00003.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {
        "id": "a",
        "messages": [{"role": "user", "content": "Question a?"}, {"role": "assistant", "content": "Answer number a."}],
        "grounding": 0.9,
    }
    contents = [t for pid in "abc" for t in (f"Question {pid}?", f"Answer number {pid}.")]
    assert stats[0]["tokens"] == stats[1]["tokens"] == count_tokens(contents, "minilm") > 0
    assert stats[0]["bytes"] == (tmp_path / "data/train-00001-of-00003.parquet").stat().st_size
    assert stats[1]["bytes"] == (tmp_path / "data/train-00001-of-00003.jsonl").stat().st_size


def test_writer_with_no_rows_writes_nothing(tmp_path):
    """An empty group yields no statistics and no files."""
    writer = ShardWriter(str(tmp_path), ["jsonl"], "minilm", RECORDS)
    assert writer.write_frame(batch([]).to_pandas()).empty
    assert not (tmp_path / "data").exists()


def test_unknown_format_is_refused():
    """A format other than parquet/jsonl is a clear error."""
    with pytest.raises(ValueError, match="choose from"):
        ShardWriter("/tmp/x", ["csv"], "minilm", RECORDS)


def test_split_is_deterministic_and_close_to_fraction():
    """The split depends only on (salt, id) and hits the requested fraction on many ids."""
    ids = [f"pair-{i}" for i in range(20_000)]
    splits = [split_for(i, 0.1, "fi-spark") for i in ids]
    share = splits.count("validation") / len(ids)
    assert 0.09 < share < 0.11
    assert splits == [split_for(i, 0.1, "fi-spark") for i in ids]
    assert splits != [split_for(i, 0.1, "other-salt") for i in ids]
    assert all(split_for(i, 0.0, "fi-spark") == "train" for i in ids[:100])
    assert 0.0 <= split_unit("x", "s") < 1.0


def test_shard_count_and_names():
    """Shard counts round up and never drop to zero; names follow the HF datasets pattern."""
    assert (shard_count(0, 10), shard_count(10, 10), shard_count(11, 10)) == (1, 1, 2)
    assert shard_name("train", 3, 12, "parquet") == "train-00003-of-00012.parquet"
    with pytest.raises(ValueError):
        shard_count(5, 0)


def test_chat_turns_with_and_without_system():
    """The messages column holds user then assistant, with an optional system turn first."""
    assert [t["role"] for t in chat_turns("q", "a")] == ["user", "assistant"]
    assert chat_turns("q", "a", "Be brief.")[0] == {"role": "system", "content": "Be brief."}
