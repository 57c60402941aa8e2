"""Template identity and near-duplicate merging.

Genericizing paraphrased queries yields templates that differ only in case, punctuation or the
wording inside slots. Such templates share a *skeleton* (tags.ParsedTemplate.skeleton); with
merging on, the template id is the hash of the skeleton, so they collapse into one row whose
`source_query_ids` lists every query behind it. The text kept for the merged row is chosen
deterministically (`representative_order`): the most common canonical text, then the shortest,
then the alphabetically first, so a re-run picks the same one regardless of partitioning.

Skeleton equality is deliberately conservative (it never merges templates whose literal words
differ); embedding-level near-duplicates are left to the match stage's per-template cap.
"""

from __future__ import annotations

import hashlib

from fi_spark.text.tags import ParsedTemplate


def template_key(parsed: ParsedTemplate, merge_near_duplicates: bool = True) -> str:
    """The string that identifies a template: its skeleton when merging, else its canonical text."""
    return parsed.skeleton() if merge_near_duplicates else parsed.canonical()


def template_id(key: str) -> str:
    """Deterministic 16-hex-digit id of a template key (sha256 prefix)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def representative_order(count: int, text: str) -> tuple[int, int, str]:
    """Sort key choosing the text kept for a merged group: most frequent, shortest, then alphabetical."""
    return (-count, len(text), text)
