"""Main-text extraction quality and speed on shared/data/web (165 real pages with gold snippets).

Usage: python -m bench.html_extract [--data ../shared/data/web]
Prints a table (with-recall: share of must-have snippets found; without-precision: share of boilerplate
snippets absent; empty pages; pages/s; MB/s) and a one-line summary. Used to choose the default of
``web.extractor`` (see fi_spark/ingest/html.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.harness.data import web_data_path
from bench.harness.table import print_table, ratio
from fi_spark.ingest.html import extract_main_text


def _ws(text: str) -> str:
    return " ".join(text.split())


def evaluate(pages: list[tuple[str, bytes, dict]], extractor: str) -> dict[str, float]:
    extract_main_text(pages[0][1], extractor, pages[0][0])  # import and warm up outside the timing
    started = time.perf_counter()
    outputs = [extract_main_text(body, extractor, url) for url, body, _ in pages]
    seconds = time.perf_counter() - started
    found = must = absent = boiler = empty = 0
    for (_, _, gold), out in zip(pages, outputs, strict=True):
        text = _ws(out)
        empty += not text
        found += sum(_ws(s) in text for s in gold["with"])
        must += len(gold["with"])
        absent += sum(_ws(s) not in text for s in gold["without"])
        boiler += len(gold["without"])
    recall, precision = found / must, absent / boiler
    megabytes = sum(len(body) for _, body, _ in pages) / 1e6
    return {
        "recall": recall,
        "precision": precision,
        "f1": 2 * recall * precision / (recall + precision),
        "empty": empty,
        "pages_s": len(pages) / seconds,
        "mb_s": megabytes / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(web_data_path()))
    args = parser.parse_args()
    root = Path(args.data)
    gold = json.loads((root / "gold_snippets.json").read_text(encoding="utf-8"))
    pages = [(url, (root / g["path"]).read_bytes(), g) for url, g in gold.items()]
    print(f"{len(pages)} pages, {sum(len(b) for _, b, _ in pages) / 1e6:.1f} MB\n")
    results = {extractor: evaluate(pages, extractor) for extractor in ("trafilatura", "resiliparse")}
    print_table(
        ["extractor", "with-recall", "without-precision", "F1", "empty", "pages/s", "MB/s"],
        [[name, f"{r['recall']:.3f}", f"{r['precision']:.3f}", f"{r['f1']:.3f}", f"{r['empty']:.0f}",
          f"{r['pages_s']:.1f}", f"{r['mb_s']:.2f}"] for name, r in results.items()],
    )  # fmt: skip
    t, r = results["trafilatura"], results["resiliparse"]
    print(
        f"\nhtml: trafilatura F1 {t['f1']:.3f} at {t['pages_s']:.1f} pages/s; "
        f"resiliparse F1 {r['f1']:.3f} at {r['pages_s']:.1f} pages/s "
        f"({ratio(r['pages_s'], t['pages_s'], '.1f')}x faster)"
    )


if __name__ == "__main__":
    main()
