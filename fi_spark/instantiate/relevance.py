"""Relevance of an answer to its instruction: the cosine of the two under the run's sentence encoder.

With `instantiate.answer_span: best` (the local profile) the same encoder also chooses the answer: of the
windows of 1-3 whole sentences of the shown text that name every slot value, the one closest to the filled
instruction (`candidate_windows`, `best_windows`). A 135M instantiator picks sentences 1-2 of almost every
document whatever it was asked (README), so its range answers the document's first topic, not the request;
the window the encoder picks is still verbatim text of the document, so grounding is unchanged.

Grounding says the answer is copied from the document; it says nothing about whether it answers the
request. The encoder matching already loads (all-MiniLM-L6-v2 locally, trained on question/answer and
title/body pairs among others) scores how well a text answers a question, so instruction vs answer is a
cheap, model-free second opinion beside the LLM judge: `pairs.relevance`, the `off_topic` gate
(`instantiate.min_relevance`) and one of the judges compared on the labeled pairs (bench/pair_gates.py).
Scored in batches inside a Spark task; the encoder is the per-process one (fi_spark.embed.encoder).
"""

from __future__ import annotations

import numpy as np

from fi_spark.config.embed import EmbedConfig
from fi_spark.embed.encoder import encode, load_encoder


def relevance(cfg: EmbedConfig, instructions: list[str], answers: list[str]) -> list[float]:
    """Cosine of each instruction with its answer (unit vectors: the inner product), rounded to 4 places."""
    if not instructions:
        return []
    model = load_encoder(cfg)
    a = encode(model, [i or "" for i in instructions], cfg.batch_size)
    b = encode(model, [x or "" for x in answers], cfg.batch_size)
    return [round(float(x), 4) for x in np.einsum("ij,ij->i", a, b)]


def candidate_windows(
    shown: str,
    values: list[str],
    max_sentences: int,
    max_chars: int,
    instruction: str | None = None,
    min_words: int = 1,
    template: str | None = None,
    min_question_coverage: float = 0.0,
) -> list[tuple[int, int]]:
    """[start, end) spans of 1..max_sentences consecutive whole sentences of `shown` that name every slot value
    (pair_gates.values_missing_from), fit in max_chars and are not a heading alone (pair_gates.fragment); with
    `instruction`, only windows that hold an answer of the kind it asks (pair_gates.answer_type_problem); with
    `template`, only windows that mention at least `min_question_coverage` of what it asks (question_coverage)."""
    from fi_spark.instantiate import excerpts, pair_gates

    spans = excerpts.sentence_spans(shown)
    out = []
    for i in range(len(spans)):
        for j in range(i, min(i + max_sentences, len(spans))):
            start = pair_gates.drop_heading_lines(shown, spans[i][0], spans[j][1])
            end = spans[j][1]
            if end - start > max_chars:
                break
            text = shown[start:end]
            if len(text.split()) < min_words:
                continue
            if pair_gates.fragment(text) is None and not pair_gates.values_missing_from(values, text):
                if instruction is not None and pair_gates.answer_type_problem(instruction, text, values):
                    continue
                if template and pair_gates.question_coverage(template, text) < min_question_coverage:
                    continue
                out.append((start, end))
    return list(dict.fromkeys(out))


def slot_fit(cfg: EmbedConfig, descriptions: list[list[str]], values: list[list[str]]) -> list[float | None]:
    """Per pair, the lowest cosine of a slot's description with its value (None: no slots): is each value a
    thing of the kind its slot asks for? `a sovereign state` <- `the 2003 boat race` scores 0.03, <- `Kenya`
    0.50 (all-MiniLM-L6-v2); a template filled with a thing of another kind asks a question that makes no
    sense (`When did the 2003 boat race gain its independence?`): `slot_type_mismatch` below
    `instantiate.min_slot_fit`."""
    flat_d = [d for group in descriptions for d in group]
    flat_v = [v for group in values for v in group]
    if not flat_d:
        return [None] * len(descriptions)
    model = load_encoder(cfg)
    scores = np.einsum("ij,ij->i", encode(model, flat_d, cfg.batch_size), encode(model, flat_v, cfg.batch_size))
    out: list[float | None] = []
    pos = 0
    for group in descriptions:
        n = len(group)
        out.append(round(float(scores[pos : pos + n].min()), 4) if n else None)
        pos += n
    return out


def best_windows(
    cfg: EmbedConfig, instructions: list[str], candidates: list[list[str]]
) -> list[tuple[int | None, float | None]]:
    """For each instruction, the index of its candidate answer with the highest cosine, and that cosine
    (None, None when it has no candidate). One encoder pass over every instruction and candidate."""
    texts = [t for group in candidates for t in group]
    if not texts:
        return [(None, None)] * len(instructions)
    model = load_encoder(cfg)
    q = encode(model, [i or "" for i in instructions], cfg.batch_size)
    c = encode(model, texts, cfg.batch_size)
    out: list[tuple[int | None, float | None]] = []
    pos = 0
    for i, group in enumerate(candidates):
        if not group:
            out.append((None, None))
            continue
        scores = c[pos : pos + len(group)] @ q[i]
        best = int(np.argmax(scores))
        out.append((best, round(float(scores[best]), 4)))
        pos += len(group)
    return out
