"""Relevance of an answer to its instruction: the cosine of the two under the run's sentence encoder.

Grounding says the answer is copied from the document; it says nothing about whether it answers the
request. The encoder matching already loads (all-MiniLM-L6-v2 locally, trained on question/answer and
title/body pairs among others) scores how well a text answers a question, so instruction vs answer is a
cheap, model-free second opinion beside the LLM judge: `pairs.relevance`, the `off_topic` gate
(`instantiate.min_relevance`) and one of the judges compared on the labeled pairs (bench/pair_gates.py).
Scored in batches inside a Spark task; the encoder is the per-process one (fi_spark.embed.encoder).
"""

from __future__ import annotations

import numpy as np

from fi_spark.embed.config import EmbedConfig
from fi_spark.embed.encoder import encode, load_encoder


def relevance(cfg: EmbedConfig, instructions: list[str], answers: list[str]) -> list[float]:
    """Cosine of each instruction with its answer (unit vectors: the inner product), rounded to 4 places."""
    if not instructions:
        return []
    model = load_encoder(cfg)
    a = encode(model, [i or "" for i in instructions], cfg.batch_size)
    b = encode(model, [x or "" for x in answers], cfg.batch_size)
    return [round(float(x), 4) for x in np.einsum("ij,ij->i", a, b)]
