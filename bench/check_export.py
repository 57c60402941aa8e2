r"""An independent check of an export, written apart from fi_spark's own checks on purpose.

The automatic part of the rubric (bench/labeled/RUBRIC.md), each rule written here again from its text so a
bug in the stages' gates cannot hide; nothing from fi_spark is imported. Words are `\w+` runs, lower-cased.
- grounded: the answer is covered >= 80% by verbatim runs of >= 5 words of its source document (issue 11);
- markup: no `<fi>` tag, `[placeholder]`, `{placeholder}` or `___` in the instruction;
- pointer: the instruction does not point at an input it does not carry (`the given ...`, `the following
  ...`, `this passage`, a closing colon);
- cut: the instruction does not end on a function word or a comma (a cap cut it mid-sentence);
- title: the answer does not open with a title line (a short first line without sentence punctuation);
- fragment: the answer ends as a sentence does;
- topic: the answer shares at least one content word with the instruction (a floor, not a relevance score);
- repeat: no instruction appears more than twice.
Whether the answer truly answers the request is for a reader (the labels); these checks only bound it.
Prints one line per pair and ends with `check_export: B bad of N pairs; share passing the automatic rubric
checks: P%`.

    python -m bench.check_export ./fi-spark-out fi_spark/resources/sample/documents.jsonl
"""

from __future__ import annotations

import glob
import json
import re
import sys

import pyarrow.parquet as pq

WORD = re.compile(r"\w+")
RUN = 5
MARKUP = re.compile(r"<\s*/?\s*fi\s*>|\[[A-Za-z][^\]]{0,40}\]|\{[A-Za-z_][^}]{0,40}\}|_{3,}")
POINTER = re.compile(
    r"\b(?:the|this|these)\s+(?:given|following|above|below|provided)\b|\bthis\s+(?:passage|text|sentence|"
    r"paragraph|article|document|list|story|poem)\b|:\s*$",
    re.IGNORECASE,
)
CUT = re.compile(r"(?:\b(?:the|a|an|of|and|or|to|in|for|with|by|on|at|from|that|which)|[,;:(-])$", re.IGNORECASE)
ENDS = re.compile(r"[.?!][\"')\]\u201d\u2019]*\s*$")
FUNCTION = set(
    "a an the of in on at to for from by with and or as is are was were be been its it this that what who whom "
    "which when where why how do does did can could would should will tell me about give explain describe "
    "i you your my".split()
)


def problems(instruction: str, answer: str, source: str, seen: int) -> list[str]:
    """The automatic rubric checks `instruction` / `answer` fail (empty: it passes them all)."""
    found = []
    cov = coverage(answer, source)
    if cov < 0.8:
        found.append(f"ungrounded({cov:.2f})")
    if MARKUP.search(instruction):
        found.append("markup")
    if POINTER.search(instruction.strip()):
        found.append("pointer")
    if CUT.search(instruction.strip()):
        found.append("cut")
    first_line = answer.strip().split("\n", 1)[0]
    if "\n" in answer.strip() and len(first_line.split()) <= 12 and not ENDS.search(first_line):
        found.append("title")
    if not ENDS.search(answer):
        found.append("fragment")
    asked = {w.lower() for w in WORD.findall(instruction)} - FUNCTION
    if asked and not asked & {w.lower() for w in WORD.findall(answer)}:
        found.append("topic")
    if seen > 2:
        found.append("repeat")
    return found


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
    seen: dict[str, int] = {}
    for r in rows:
        said = {m["role"]: m["content"] for m in r["messages"]}
        instruction, answer = said.get("user", ""), said.get("assistant", "")
        key = " ".join(WORD.findall(instruction.lower()))
        seen[key] = seen.get(key, 0) + 1
        failed = problems(instruction, answer, docs.get(r["doc_id"], ""), seen[key])
        bad += bool(failed)
        print(f"{'ok ' if not failed else 'BAD'} {','.join(failed) or '-'} doc={r['doc_id']} | {instruction[:90]!r}")
    share = (len(rows) - bad) / len(rows) if rows else 0.0
    print(f"check_export: {bad} bad of {len(rows)} pairs ({len(files)} shards); "
          f"share passing the automatic rubric checks: {share:.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
