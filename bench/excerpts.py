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

    python bench/excerpts.py                 # ~6-10 minutes on 2 CPU cores
    python bench/excerpts.py --arms a,b      # some arms only
    python bench/excerpts.py --build         # rebuild the pair set (genericizes 24 sample queries first)
    python bench/excerpts.py --build --queries 160 --docs 40 --arms "" --pairs bench/cost_pairs.json
                                             # the larger set bench/cost_per_pair.py uses (120 pairs)
    python bench/excerpts.py --arms b,d --tables /tmp/run-v2/tables --limit 16   # pairs from a run's tables
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fi_spark.config import EmbedConfig, LLMConfig, load_config, load_prompt  # noqa: E402
from fi_spark.genericize import GenericizeAnswer, parse_answer, parse_template, validate_template  # noqa: E402
from fi_spark.instantiate import excerpts  # noqa: E402
from fi_spark.instantiate import prompts as gen  # noqa: E402
from fi_spark.llm.adapter import Adapter  # noqa: E402
from fi_spark.llm.client import LLMClient  # noqa: E402
from fi_spark.llm.types import LLMRequest, Sampling  # noqa: E402

PAIRS_FILE = ROOT / "bench" / "excerpts_pairs.json"
SAMPLE = ROOT / "fi_spark" / "resources" / "sample"
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_WORDS = re.compile(r"\S+")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def server_model(url: str) -> str:
    with urllib.request.urlopen(f"{url}/models", timeout=10) as resp:
        return str(json.load(resp)["data"][0]["id"])


async def send(
    cfg: LLMConfig, model: str, sampling: Sampling, jobs: list[tuple[Any, ...]], on_result: Any = None
) -> list[Any]:
    """Each job is (schema, messages) or (schema, messages, group); one adapter per distinct schema, results in
    job order. A group (e.g. the document) asks the client for endpoint affinity (fi_spark.llm.policy)."""
    adapters: dict[str, Adapter] = {}
    out: list[Any] = [None] * len(jobs)
    async with LLMClient(cfg, cfg.endpoints, Adapter(model=model, sampling=sampling)) as client:
        groups: dict[str, list[int]] = collections.defaultdict(list)
        for i, (schema, *_) in enumerate(jobs):
            key = json.dumps(schema, sort_keys=True, default=str)
            if key not in adapters:
                adapters[key] = Adapter(model=model, sampling=sampling, response_schema=schema, schema_name="answer")
            groups[key].append(i)
        for key, idx in groups.items():  # groups keep document order; one adapter (schema) per group
            client.adapter = adapters[key]
            reqs = [LLMRequest(id=f"r{i}", messages=jobs[i][1], key=str(i), group=(*jobs[i], None)[2]) for i in idx]
            async for res in client.stream(reqs):
                out[int(res.key)] = res
                if on_result is not None:
                    on_result(int(res.key), res)
    return out


# --------------------------------------------------------------------------- building the fixed pair set
def genericize_sample(url: str, model: str, n_queries: int) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The local profile's genericize prompt on the first `n_queries` sample queries (by id), validated by the
    stage's rules: (valid (template, description) pairs, {"sent", "reasons", "gen_tokens", "seconds"})."""
    cfg = load_config("local")
    spec = load_prompt(cfg.templates.prompt)
    from fi_spark.prompting.messages import chat_messages

    queries = sorted(read_jsonl(SAMPLE / "queries.jsonl"), key=lambda q: q["id"])[:n_queries]
    llm = cfg.llm.model_copy(update={"endpoints": [url], "concurrency": 8})
    sampling = Sampling(max_tokens=cfg.templates.max_tokens or 256, temperature=0.0, seed=0,
                        frequency_penalty=cfg.llm.frequency_penalty)  # fmt: skip
    jobs = [(GenericizeAnswer, chat_messages(spec, {"query": q["text"]})) for q in queries]
    started = time.monotonic()
    results = asyncio.run(send(llm, model, sampling, jobs))
    templates: list[tuple[str, str]] = []
    verdicts: collections.Counter[str] = collections.Counter()
    for q, res in zip(queries, results, strict=True):
        template, desc, problem = parse_answer(res.parsed or res.content)
        verdict = validate_template(template, desc, cfg.templates, q["text"]) if not problem else None
        verdicts[(verdict.reason or "ok") if verdict else f"llm_{res.error_reason or 'unusable'}"] += 1
        if verdict is not None and verdict.ok:
            templates.append((str(template), str(desc)))
    stats = {"sent": len(queries), "reasons": dict(verdicts), "seconds": time.monotonic() - started,
             "gen_tokens": sum(r.completion_tokens for r in results)}  # fmt: skip
    return templates, stats


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


# --------------------------------------------------------------------------- running the arms
def run_arm(name: str, pairs: list[dict[str, str]], url: str, model: str, dump: Path | None = None) -> dict[str, Any]:
    cfg = load_config("local")
    icfg = cfg.instantiate
    spec = load_prompt({"a": "instantiate.v1", "d": "instantiate.v3"}.get(name, "instantiate.v2"))
    rules = gen.InstantiateRules.from_config(icfg, spec)
    jobs: list[tuple[Any, list[dict[str, str]]]] = []
    for pair in pairs:
        n = len(parse_template(pair["template"]).slots)
        schema = gen.response_schema(n, icfg.max_instruction_chars, icfg.max_answer_chars, spec=spec)
        if name == "c":
            schema = construction_schema(schema or {}, excerpts.shown_text(pair["document"], icfg.max_source_chars))
        jobs.append((schema, gen.build_messages(spec, pair["template"], pair["document"], icfg.max_source_chars)))
    llm = cfg.llm.model_copy(update={"endpoints": [url], "concurrency": 8, "schema_retries": 0})
    sampling = Sampling(max_tokens=icfg.max_tokens or cfg.llm.max_tokens, temperature=0.0, seed=0,
                        frequency_penalty=cfg.llm.frequency_penalty)  # fmt: skip
    started = time.monotonic()

    def progress(i: int, res: Any) -> None:  # one line per answer, so a cut-short run still shows its numbers
        check = gen.evaluate_instantiation(res.parsed or res.content, pairs[i]["document"], rules)
        reason = f"llm_{res.error_reason}" if res.error_reason else (check.reason or "kept")
        print(f"[{name}] {time.monotonic() - started:7.1f}s pair {i:>2} {reason:<20} gen={res.completion_tokens}",
              file=sys.stderr, flush=True)  # fmt: skip
        if dump is not None:  # the raw answer and what the checks made of it, one JSON line per pair
            row = {"arm": name, "pair": i, "reason": reason, "detail": check.detail, "raw": res.parsed or res.content,
                   "instruction": check.instruction, "answer": check.answer}  # fmt: skip
            with dump.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    results = asyncio.run(send(llm, model, sampling, jobs, progress))
    seconds = time.monotonic() - started
    reasons: collections.Counter[str] = collections.Counter()
    kept = gen_tokens = prompt_tokens = cached = 0
    shares = []
    for pair, res in zip(pairs, results, strict=True):
        gen_tokens += res.completion_tokens
        prompt_tokens += res.prompt_tokens
        cached += int(getattr(res, "cached_tokens", 0) or 0)
        if res.error_reason:
            reasons[f"llm_{res.error_reason}"] += 1
            continue
        check = gen.evaluate_instantiation(res.parsed or res.content, pair["document"], rules)
        reasons[check.reason or "kept"] += 1
        if check.reason is None:
            kept += 1
            if check.excerpt_share is not None:
                shares.append(check.excerpt_share)
    return {
        "arm": name, "sent": len(pairs), "kept": kept, "gen_tokens": gen_tokens, "prompt_tokens": prompt_tokens,
        "cached_tokens": cached, "seconds": seconds, "reasons": dict(reasons),
        "excerpt_share": sum(shares) / len(shares) if shares else None,
    }  # fmt: skip


LABELS = {"a": "(a) copied v1", "b": "(b) markers v2", "c": "(c) by construction", "d": "(d) sentences v3"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8011/v1")
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
    rows = [run_arm(arm, pairs, args.url, model, args.dump) for arm in args.arms.split(",") if arm]
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
