"""Where the benchmarks' inputs live and how they are read: the benchmark corpus, the bundled sample, web pages.

The corpus (shared/bench/corpus.jsonl.gz: real reviews, Usenet posts, news, book paragraphs, one JSON object per
line with `id` and `text`) is looked up in the `shared/` folder beside the repository, as it is on this machine
(`../shared` relative to the repository), unless FI_SPARK_BENCH_CORPUS names another file (bench/run_all.py sets
it) or a bench's --corpus option does. Every bench takes "the first N documents" from it, in file order.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SAMPLE = REPO / "fi_spark" / "resources" / "sample"  # the bundled sample: documents.jsonl, queries.jsonl
BENCH = REPO / "bench"  # the fixed pair sets and labeled pairs the benches read


def corpus_path(explicit: Path | str | None = None) -> Path:
    """The benchmark corpus: `explicit`, else $FI_SPARK_BENCH_CORPUS, else ../shared/bench/corpus.jsonl.gz."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("FI_SPARK_BENCH_CORPUS") or SHARED / "bench" / "corpus.jsonl.gz")


def web_data_path() -> Path:
    """shared/data/web: real HTML pages with gold snippets (bench/html_extract.py)."""
    return SHARED / "data" / "web"


def corpus_lines(n: int, corpus: Path | str | None = None) -> list[str]:
    """The first `n` lines of the corpus, as written (each a JSON document with its newline)."""
    with gzip.open(corpus_path(corpus), "rt", encoding="utf-8") as fh:
        return [line for _, line in zip(range(n), fh, strict=False)]


def corpus_records(corpus: Path | str | None = None) -> Iterator[dict[str, Any]]:
    """Every corpus document in file order, parsed (stop reading by stopping the iteration)."""
    with gzip.open(corpus_path(corpus), "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def corpus_texts(n: int, corpus: Path | str | None = None) -> list[tuple[str, str]]:
    """(id, text) of the first `n` corpus documents."""
    return [(r["id"], r["text"]) for _, r in zip(range(n), corpus_records(corpus), strict=False)]


def write_corpus_slice(n: int, path: Path, corpus: Path | str | None = None) -> Path:
    """The first `n` corpus documents as a JSONL file at `path` (the input of a stage or a pipeline run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(corpus_lines(n, corpus)), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
