"""Benchmark: copied answers (instantiate.v1) vs excerpt markers (instantiate.v2) vs markers by construction.

On the real local vLLM server (SmolLM2-135M on CPU, port 8011 by default), the same fixed set of
(template, document) pairs from the bundled sample goes through each answer contract, and every answer is
checked by the stage's own `evaluate_instantiation` (grounding on the expanded answer, excerpt reasons):

- (a) copied: instantiate.v1 -- the answer copied verbatim, JSON schema with a length cap;
- (b) markers: instantiate.v2 -- `<excerpt>first<...>last</excerpt>` markers in the answer string, the
  schema's `pattern` forcing well-formed markers, `compatible: false` to decline;
- (c) by construction: the v2 prompt, but the schema's answer is a list of parts whose `first` / `last`
  are enums of the shown text's sentence starts / ends that occur exactly once, so every marker names
  text that exists (it can still name an end before its start). The schema depends on the document,
  so this arm needs one schema per document: the stage's `complete` sends one schema per call, so (c)
  exists here only;
- (d) sentences: instantiate.v3 -- the document shown with numbered sentences, the schema asking for
  `first_sentence` / `last_sentence` integers; the answer is that range of the shown text, verbatim.

Printed per arm: pairs kept (pass every check) / sent, reject reasons, generated tokens in total and per
kept pair, prompt tokens, and wall seconds. Requests are sent document by document (a document's
templates together), as the stage's affinity routing does, so (b)/(c) can reuse the document prefix.

The pair set is fixed: bench/excerpts_pairs.json, built once with `--build` (the real genericizer on
sample queries, validated, then each of 10 documents' 3 best templates by MiniLM cosine), committed so
every run measures the same pairs.

    python -m bench.excerpts                 # ~6-10 minutes on 2 CPU cores
    python -m bench.excerpts --arms a,b      # some arms only
    python -m bench.excerpts --build         # rebuild the pair set (genericizes 24 sample queries first)
    python -m bench.excerpts --build --queries 160 --docs 40 --arms "" --pairs bench/cost_pairs.json
                                             # the larger set bench/cost_per_pair.py uses (120 pairs)
    python -m bench.excerpts --arms b,d --tables /tmp/run-v2/tables --limit 16   # pairs from a run's tables
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.harness.data import SAMPLE, read_jsonl
from bench.harness.real_model import LOCAL_URL, PAIRS_FILE, genericize_sample, run_instantiate_arm, server_model
from fi_spark.config import EmbedConfig
from fi_spark.instantiate import excerpts

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_WORDS = re.compile(r"\S+")


# --------------------------------------------------------------------------- building the fixed pair set
def build_pairs(url: str, model: str, n_queries: int, n_docs: int, per_doc: int) -> list[dict[str, str]]:
    templates, stats = genericize_sample(url, model, n_queries)
    print(f"genericized {n_queries} queries -> {len(templates)} valid templates; {stats['reasons']}", file=sys.stderr)

    import numpy as np

    from fi_spark.embed.encoder import encode, load_encoder

    docs = read_jsonl(SAMPLE / "documents.jsonl")
    encoder = load_encoder(EmbedConfig())
    dvec = encode(encoder, [d["text"][:2000] for d in docs], 32)
    tvec = encode(encoder, [d for _, d in templates], 32)
    scores = dvec @ tvec.T
    best = np.argsort(-scores, axis=1)[:, :per_doc]
    ranked = sorted(range(len(docs)), key=lambda i: -float(scores[i, best[i]].mean()))[:n_docs]
    return [
        {"doc_id": docs[i]["id"], "document": docs[i]["text"], "template": templates[j][0]}
        for i in ranked
        for j in best[i]
    ]


def pairs_from_tables(tables: Path, n: int) -> list[dict[str, str]]:
    """Pairs from a run's Delta tables: its matches first (the region it matched), then every template
    against the documents in doc_id order, round robin, up to `n` pairs (templates that may not fit: the
    decline path is measured too)."""
    from deltalake import DeltaTable

    docs = DeltaTable(str(tables / "documents")).to_pandas().sort_values("doc_id")
    temps = DeltaTable(str(tables / "templates")).to_pandas().sort_values("template_id")
    text = dict(zip(docs["doc_id"], docs["text"], strict=True))
    tmpl = dict(zip(temps["template_id"], temps["template"], strict=True))
    pairs = []
    for m in DeltaTable(str(tables / "matches")).to_pandas().sort_values(["doc_id", "rank"]).itertuples():
        body = text[m.doc_id][int(m.char_start) : int(m.char_end)] if m.char_end else text[m.doc_id]
        pairs.append({"doc_id": m.doc_id, "document": body, "template": tmpl[m.template_id]})
    ids, k = list(temps["template_id"]), 0
    for doc_id in docs["doc_id"]:
        if len(pairs) >= n:
            break
        pairs.append({"doc_id": doc_id, "document": text[doc_id], "template": tmpl[ids[k % len(ids)]]})
        k += 1
    return pairs[:n]


# --------------------------------------------------------------------------- arm (c): schema by construction
def sentence_bounds(shown: str, words: int = 4, limit: int = 40) -> tuple[list[str], list[str]]:
    """Sentence starts / ends (up to `words` words) of `shown` that occur exactly once in it."""
    starts, ends = [], []
    for match in _SENTENCE.finditer(shown):
        tokens = _WORDS.findall(match.group(0))
        if len(tokens) < 3:
            continue
        for piece, bucket in ((" ".join(tokens[:words]), starts), (" ".join(tokens[-words:]), ends)):
            if piece not in bucket and excerpts.expand(f"<excerpt>{piece}</excerpt>", shown).reason is None:
                bucket.append(piece)
    return starts[:limit], ends[:limit]


def construction_schema(base: dict[str, Any], shown: str) -> dict[str, Any] | None:
    starts, ends = sentence_bounds(shown)
    if not starts or not ends:
        return None
    schema = json.loads(json.dumps(base))
    schema["properties"]["answer"] = {
        "type": "array", "minItems": 1, "maxItems": 2,
        "items": {"type": "object", "additionalProperties": False, "required": ["lead", "first", "last"],
                  "properties": {"lead": {"type": "string", "maxLength": 40},
                                 "first": {"enum": starts}, "last": {"enum": ends}}},
    }  # fmt: skip
    return schema


LABELS = {"a": "(a) copied v1", "b": "(b) markers v2", "c": "(c) by construction", "d": "(d) sentences v3"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=LOCAL_URL)
    parser.add_argument("--arms", default="a,b,c")
    parser.add_argument("--build", action="store_true", help="rebuild bench/excerpts_pairs.json first")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pairs")
    parser.add_argument("--queries", type=int, default=24, help="--build: sample queries to genericize")
    parser.add_argument("--docs", type=int, default=10, help="--build: documents, each with its 3 best templates")
    parser.add_argument("--pairs", type=Path, default=PAIRS_FILE, help="the fixed pair set (JSON list)")
    parser.add_argument("--tables", type=Path, default=None, help="take the pairs from a run's Delta tables")
    parser.add_argument("--dump", type=Path, default=None, help="append each answer and its check (JSON lines)")
    args = parser.parse_args()
    model = server_model(args.url)
    if args.tables is not None:
        pairs = pairs_from_tables(args.tables, args.limit or 16)
        args.pairs = Path("/tmp") / "excerpts_pairs_tables.json"
        args.pairs.write_text(json.dumps(pairs, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    elif args.build or not args.pairs.exists():
        pairs = build_pairs(args.url, model, n_queries=args.queries, n_docs=args.docs, per_doc=3)
        args.pairs.write_text(json.dumps(pairs, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    pairs = json.loads(args.pairs.read_text(encoding="utf-8"))[: args.limit]
    print(f"{len(pairs)} (template, document) pairs over {len({p['doc_id'] for p in pairs})} documents; model {model}")
    rows = [run_instantiate_arm(arm, pairs, args.url, model, args.dump, construction_schema if arm == "c" else None)
            for arm in args.arms.split(",") if arm]  # fmt: skip
    if not rows:  # --arms "": build (or show) the pair set only
        return
    print(f"{'arm':<22}{'kept/sent':>10}{'pass %':>8}{'gen tok':>9}{'tok/kept':>10}{'prompt tok':>11}"
          f"{'cached':>8}{'seconds':>9}{'excerpt share':>15}")  # fmt: skip
    for r in rows:
        per = f"{r['gen_tokens'] / r['kept']:.0f}" if r["kept"] else "-"
        share = f"{r['excerpt_share']:.2f}" if r["excerpt_share"] is not None else "-"
        print(f"{LABELS[r['arm']]:<22}{r['kept']:>5}/{r['sent']:<4}{100 * r['kept'] / r['sent']:>8.1f}"
              f"{r['gen_tokens']:>9}{per:>10}{r['prompt_tokens']:>11}{r['cached_tokens']:>8}{r['seconds']:>9.1f}"
              f"{share:>15}")  # fmt: skip
    for r in rows:
        print(f"{LABELS[r['arm']]} reasons: {json.dumps(r['reasons'], sort_keys=True)}")
    print("excerpts: " + ", ".join(f"{r['arm']} {r['kept']}/{r['sent']} kept" for r in rows))


if __name__ == "__main__":
    main()
