r"""An independent check of an export, written apart from fi_spark's own grounding code on purpose.

Every exported answer must be covered >= 80% by verbatim runs of >= 5 words of its source document, and no
instruction may hold a `<fi>` tag (issue 11's acceptance rule). Words are `\w+` runs, lower-cased; nothing
from fi_spark is imported, so a bug in the stages' checks cannot hide here. Prints one line per pair and
ends with `check_export: B bad of N pairs`.

    python bench/check_export.py ./fi-spark-out fi_spark/resources/sample/documents.jsonl
"""

from __future__ import annotations

import glob
import json
import re
import sys

import pyarrow.parquet as pq

WORD = re.compile(r"\w+")
RUN = 5


def coverage(answer: str, source: str) -> float:
    """Share of the answer's words inside some run of RUN consecutive words that also occurs in the source."""
    a = [w.lower() for w in WORD.findall(answer)]
    s = [w.lower() for w in WORD.findall(source)]
    grams = {tuple(s[i : i + RUN]) for i in range(len(s) - RUN + 1)}
    covered = [False] * len(a)
    for i in range(len(a) - RUN + 1):
        if tuple(a[i : i + RUN]) in grams:
            covered[i : i + RUN] = [True] * RUN
    return sum(covered) / len(a) if a else 0.0


def main() -> None:
    run, documents = sys.argv[1], sys.argv[2]
    with open(documents, encoding="utf-8") as fh:
        docs = {d["id"]: d["text"] for d in map(json.loads, fh)}
    files = sorted(glob.glob(f"{run}/export/data/**/*.parquet", recursive=True))
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    bad = 0
    for r in rows:
        said = {m["role"]: m["content"] for m in r["messages"]}
        cov = coverage(said.get("assistant", ""), docs.get(r["doc_id"], ""))
        ok = cov >= 0.8 and "<fi>" not in said.get("user", "")
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} coverage={cov:.2f} doc={r['doc_id']} | {said.get('user', '')[:70]!r}")
    print(f"check_export: {bad} bad of {len(rows)} pairs ({len(files)} shards)")


if __name__ == "__main__":
    main()
