"""Small pure rules of the export: split by id, shard counts and names, chat turns.

The split of a pair depends only on its id and a salt: the first 13 hex digits (52 bits) of
sha256(salt + ":" + id), divided by 2**52, give a number u in [0, 1); the pair is validation when
u < validation_fraction. The same pair lands in the same split in every run, on every engine, no
matter how the data is partitioned, and growing the dataset never moves an existing pair. 52 bits
because a double holds them exactly, so the Spark expression (`split_column`, fi_spark.export.spark)
and this Python reference agree on every id.
"""

from __future__ import annotations

import hashlib
import math


def split_unit(pair_id: str, salt: str) -> float:
    """The pair's uniform draw in [0, 1), fixed by (salt, id)."""
    digest = hashlib.sha256(f"{salt}:{pair_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 2**52


def split_for(pair_id: str, validation_fraction: float, salt: str) -> str:
    """'validation' for about `validation_fraction` of ids, else 'train'."""
    if validation_fraction <= 0.0:
        return "train"
    return "validation" if split_unit(pair_id, salt) < validation_fraction else "train"


def shard_count(rows: int, rows_per_shard: int) -> int:
    """How many shards `rows` rows need at about `rows_per_shard` each (at least one)."""
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    return max(1, math.ceil(rows / rows_per_shard))


def shard_name(split: str, index: int, count: int, ext: str) -> str:
    """`train-00003-of-00012.parquet`: the Hugging Face datasets naming, so `data/train-*` globs find splits."""
    return f"{split}-{index:05d}-of-{count:05d}.{ext}"


def chat_turns(instruction: str, answer: str, system_prompt: str | None = None) -> list[dict[str, str]]:
    """The `messages` column: an optional system turn, the instruction as user turn, the answer as assistant turn."""
    turns = [{"role": "system", "content": system_prompt}] if system_prompt else []
    turns += [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
    return turns
