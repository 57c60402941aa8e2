"""Talking to a real OpenAI-compatible model server (the local vLLM one) the way the stages do, for the benches.

Requests are built by the stages' own pure functions (fi_spark.generate.*) with the local profile's settings and
sent through fi_spark.llm.client.LLMClient (`send`: one adapter per response schema, an optional group per
request for endpoint affinity). Shared by bench/excerpts.py, bench/models.py, bench/cost_per_pair.py and
bench/decline_stop.py:
- `genericize_sample`: the genericize prompt on the first sample queries, validated by the stage's rules;
- `run_instantiate_arm`: one instantiate prompt ("arm") over a fixed pair set, checked by evaluate_instantiation;
- `Phase` + `instantiate_pairs`: what one stage's requests cost (tokens, server- and wall-seconds) and which
  pairs passed, with a run tag before the system message so no earlier prefix-cache entry counts.
The fixed pair sets: bench/excerpts_pairs.json (30 pairs over 10 sample documents) and bench/cost_pairs.json
(120 over 40), built by `python -m bench.excerpts --build`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.data import BENCH, SAMPLE, read_jsonl
from fi_spark.config import Config, LLMConfig, load_config, load_prompt
from fi_spark.cost import GpuRates
from fi_spark.genericize import GenericizeAnswer, parse_answer, parse_template, validate_template
from fi_spark.instantiate import excerpts
from fi_spark.instantiate import prompts as inst
from fi_spark.llm.adapter import Adapter
from fi_spark.llm.client import LLMClient
from fi_spark.llm.types import LLMRequest, Sampling

PAIRS_FILE = BENCH / "excerpts_pairs.json"
COST_PAIRS = BENCH / "cost_pairs.json"
LOCAL_URL = "http://127.0.0.1:8011/v1"  # `fi-spark serve-llm`'s default
ARM_PROMPTS = {"a": "instantiate.v1", "b": "instantiate.v2", "c": "instantiate.v2", "d": "instantiate.v3"}
Job = tuple[Any, ...]  # (schema, messages) or (schema, messages, group)


def server_model(url: str) -> str:
    """The model the server at `url` serves (its first /models entry)."""
    with urllib.request.urlopen(f"{url}/models", timeout=10) as resp:  # noqa: S310 - a local URL
        return str(json.load(resp)["data"][0]["id"])


def serving(url: str) -> bool:
    """Whether an OpenAI-compatible server answers /models at `url`."""
    try:
        with urllib.request.urlopen(url + "/models", timeout=3) as r:  # noqa: S310 - a local URL
            return r.status == 200
    except OSError:
        return False


def local_vllm_url(port: int | None = None) -> str:
    """The local vLLM server's URL (llm.local.host / port, or another `port`)."""
    from fi_spark.config import LocalLLMServerConfig

    cfg = LocalLLMServerConfig()
    return f"http://{cfg.host}:{port or cfg.port}/v1"


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


@dataclass
class Phase:
    """What one stage's requests cost in one shape, and how many rows came through."""

    shape: str
    stage: str
    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    gen_tokens: int = 0
    server_s: float = 0.0
    wall_s: float = 0.0
    passed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, results: list[Any], wall_s: float) -> None:
        self.requests += len(results)
        self.prompt_tokens += sum(r.prompt_tokens for r in results)
        self.cached_tokens += sum(r.cached_tokens for r in results)
        self.gen_tokens += sum(r.completion_tokens for r in results)
        self.server_s += sum(r.server_ms for r in results) / 1000
        self.wall_s += wall_s

    @property
    def gpu_s(self) -> float:
        """GPU-seconds estimated from the tokens (fi_spark.cost, default rates): independent of the server's load."""
        return GpuRates().gpu_seconds(self.prompt_tokens, self.cached_tokens, self.gen_tokens)

    def count(self, reason: str | None) -> None:
        self.passed += reason is None
        key = reason or "kept"
        self.reasons[key] = self.reasons.get(key, 0) + 1


def tagged(messages: list[dict[str, str]], tag: str) -> list[dict[str, str]]:
    """The messages with `[run <tag>]` before the system message (none: unchanged), see the module docstring."""
    if not tag or not messages or messages[0]["role"] != "system":
        return messages
    return [{**messages[0], "content": f"[run {tag}]\n{messages[0]['content']}"}, *messages[1:]]


def sampling(cfg: Config, max_tokens: int | None, temperature: float | None, **extra: Any) -> Sampling:
    """The stage's sampling (fi_spark.llm.spark.complete's rule): the LLM section's, stage overrides on top."""
    return Sampling(max_tokens=max_tokens or cfg.llm.max_tokens,
                    temperature=cfg.llm.temperature if temperature is None else temperature, top_p=cfg.llm.top_p,
                    seed=cfg.llm.seed, frequency_penalty=cfg.llm.frequency_penalty, **extra)  # fmt: skip


def timed_send(cfg: Config, model: str, samp: Sampling, jobs: list[Job]) -> tuple[list[Any], float]:
    started = time.monotonic()
    results = asyncio.run(send(cfg.llm, model, samp, jobs))
    return results, time.monotonic() - started


def instantiate_pairs(
    cfg: Config, model: str, pairs: list[dict[str, str]], prompt: str, affinity: bool, tag: str, shape: str
) -> tuple[Phase, list[dict[str, str]]]:
    """Instantiate every pair with `prompt`; the phase's cost and the pairs that passed the checks."""
    icfg, spec = cfg.instantiate, load_prompt(prompt)
    rules = inst.InstantiateRules.from_config(icfg, spec)
    jobs: list[Job] = []
    for pair in pairs:
        n = len(parse_template(pair["template"]).slots)
        schema = inst.response_schema(n, icfg.max_instruction_chars, icfg.max_answer_chars, spec=spec)
        messages = tagged(inst.build_messages(spec, pair["template"], pair["document"], icfg.max_source_chars), tag)
        jobs.append((schema, messages, pair["doc_id"] if affinity else None))
    phase = Phase(shape, "instantiate")
    results, wall = timed_send(cfg, model, sampling(cfg, icfg.max_tokens, icfg.temperature), jobs)
    phase.add(results, wall)
    passed = []
    for pair, res in zip(pairs, results, strict=True):
        if res.error_reason:
            phase.count(f"llm_{res.error_reason}")
            continue
        check = inst.evaluate_instantiation(res.parsed or res.content, pair["document"], rules)
        phase.count(check.reason)
        if check.reason is None:
            passed.append({**pair, "instruction": check.instruction or "", "answer": check.answer or ""})
    return phase, passed


def run_instantiate_arm(
    name: str,
    pairs: list[dict[str, str]],
    url: str,
    model: str,
    dump: Path | None = None,
    reshape: Callable[[dict[str, Any], str], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Arm `name` (ARM_PROMPTS) on `pairs`: kept / sent, reasons, tokens and seconds. `reshape(schema, shown
    text)` replaces each pair's response schema (bench/excerpts.py's arm c builds it from the document)."""
    cfg = load_config("local")
    icfg = cfg.instantiate
    spec = load_prompt(ARM_PROMPTS[name])
    rules = inst.InstantiateRules.from_config(icfg, spec)
    jobs: list[tuple[Any, list[dict[str, str]]]] = []
    for pair in pairs:
        n = len(parse_template(pair["template"]).slots)
        schema = inst.response_schema(n, icfg.max_instruction_chars, icfg.max_answer_chars, spec=spec)
        if reshape is not None:
            schema = reshape(schema or {}, excerpts.shown_text(pair["document"], icfg.max_source_chars))
        jobs.append((schema, inst.build_messages(spec, pair["template"], pair["document"], icfg.max_source_chars)))
    llm = cfg.llm.model_copy(update={"endpoints": [url], "concurrency": 8, "schema_retries": 0})
    sampling = Sampling(max_tokens=icfg.max_tokens or cfg.llm.max_tokens, temperature=0.0, seed=0,
                        frequency_penalty=cfg.llm.frequency_penalty)  # fmt: skip
    started = time.monotonic()

    def progress(i: int, res: Any) -> None:  # one line per answer, so a cut-short run still shows its numbers
        check = inst.evaluate_instantiation(res.parsed or res.content, pairs[i]["document"], rules)
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
        check = inst.evaluate_instantiation(res.parsed or res.content, pair["document"], rules)
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
