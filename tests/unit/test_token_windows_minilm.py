"""Token pooling with the real MiniLM encoder: windows cover the whole document, regions follow its parts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fi_spark.config import EmbedConfig
from fi_spark.embed.documents import pool_tokens
from fi_spark.embed.encoder import encode, encode_windows, load_encoder

COOK = "The cake needs flour, sugar and eggs, baked in a hot oven for forty minutes until golden."
SKY = "The telescope showed Jupiter and its four moons orbiting high in the clear night sky."
CFG = EmbedConfig(pooling_unit="tokens", max_seq_length=16, window_overlap=4, regions=2, sigma=0.1, alpha=1.0)


def test_windows_read_every_token_of_a_long_document() -> None:
    """A 40-odd-token text in 16-token windows (14 without [CLS]/[SEP], 4 shared): every token read, in order."""
    model = load_encoder(CFG)
    ((n_tokens, windows),) = encode_windows(model, [f"{COOK} {SKY}"], 8, CFG.window_overlap, CFG.max_batch_tokens)
    assert n_tokens == len(model.tokenizer(f"{COOK} {SKY}", add_special_tokens=False)["input_ids"]) > 28
    spans = [(a, b) for a, b, _ in windows]
    assert spans[0][0] == 0 and spans[-1][1] == n_tokens and len(spans) >= 3
    assert all(b - a <= 14 and e.shape == (b - a, 384) for a, b, e in windows)
    assert all(nxt[0] == prev[1] - 4 for prev, nxt in zip(spans, spans[1:], strict=False))


def test_regions_follow_the_parts_of_a_document_longer_than_a_window() -> None:
    """The first region is nearer the cooking sentence, the last one nearer the astronomy one (past window 1)."""
    model = load_encoder(CFG)
    dv = pool_tokens(pd.DataFrame({"doc_id": ["d"], "text": [f"{COOK} {SKY}"]}), model, CFG)
    first, last = dv.matrix(384)[1], dv.matrix(384)[2]
    cook, sky = encode(model, [COOK, SKY], 8)
    assert float(first @ cook) > float(first @ sky) and float(last @ sky) > float(last @ cook)
    assert np.isclose(np.linalg.norm(first), 1.0, atol=1e-5)
