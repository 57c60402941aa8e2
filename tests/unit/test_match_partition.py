"""The per-partition half of matching: document re-cutting, chunk pooling, top-k candidates per document."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest
import torch

from fi_spark.config import EmbedConfig, IndexConfig
from fi_spark.embed.documents import complete_documents, pool_chunks, pool_tokens
from fi_spark.index.artifact import LoadedIndex
from fi_spark.index.build import build_index
from fi_spark.match.candidates import CANDIDATE_COLUMNS, top_candidates

faiss.omp_set_num_threads(1)


class WordAxisEncoder:
    """Test double: a text's vector has 1.0 on the axis of each known word it contains (then normalized)."""

    words = ["cake", "oven", "goal", "match", "tax", "zzz"]

    def get_sentence_embedding_dimension(self) -> int:
        return len(self.words)

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        out = np.array([[1.0 if w in t else 0.0 for w in self.words] for t in texts], dtype=np.float32) + 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def chunks(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["doc_id", "ordinal", "text"])
    frame["chunk_id"] = frame["doc_id"] + "-" + frame["ordinal"].astype(str)
    frame["char_start"] = frame["ordinal"] * 100
    frame["char_end"] = frame["char_start"] + 100
    frame["n_tokens"] = 20
    return frame


def with_counts(frame: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """`frame` with each row's document row count (match.unit_rows adds it in Spark)."""
    return frame.assign(n_units=frame["doc_id"].map(counts))


def test_complete_documents_carries_split_documents_over() -> None:
    """A document cut by a batch boundary comes out whole, in the next frame."""
    counts = {"a": 1, "b": 3, "c": 1}
    batches = [chunks([("a", 0, "x"), ("b", 0, "x"), ("b", 1, "x")]), chunks([("b", 2, "x"), ("c", 0, "x")])]
    frames = list(complete_documents(with_counts(b, counts) for b in batches))
    assert [f["doc_id"].tolist() for f in frames] == [["a"], ["b", "b", "b", "c"]]


def test_complete_documents_takes_rows_in_any_order() -> None:
    """Rows of documents interleaved across batches (Sail drops the sort before mapInPandas) still come out as
    whole documents, each exactly once, as soon as its last row is in."""
    counts = {"a": 3, "b": 2, "c": 1}
    batches = [chunks([("a", 2, "x"), ("b", 0, "x")]), chunks([("c", 0, "x"), ("a", 0, "x")]),
               chunks([("b", 1, "x"), ("a", 1, "x")])]  # fmt: skip
    frames = list(complete_documents(with_counts(b, counts) for b in batches))
    assert [sorted(set(f["doc_id"])) for f in frames] == [["c"], ["a", "b"]]
    whole = pd.concat(frames)
    assert sorted(zip(whole["doc_id"], whole["ordinal"], strict=True)) == [
        ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("c", 0)
    ]  # fmt: skip


def test_complete_documents_refuses_a_document_that_never_completes() -> None:
    """A document missing rows at the end of the partition (split across partitions) is an error, not half a
    document pooled; so is a document with more rows than it should have."""
    batches = [chunks([("a", 0, "x"), ("b", 0, "x")])]
    with pytest.raises(RuntimeError, match="1 document.* never got all their rows"):
        list(complete_documents(with_counts(b, {"a": 1, "b": 2}) for b in batches))
    with pytest.raises(RuntimeError, match="more rows than its n_units"):
        list(complete_documents(with_counts(b, {"a": 1, "b": 1}) for b in [chunks([("b", 0, "x"), ("b", 1, "x")])]))


def test_pool_chunks_names_the_chunk_behind_each_vector() -> None:
    """Region vectors point at the chunk nearest their centre; the global vector at the most typical chunk."""
    cfg = EmbedConfig(regions=4, sigma=0.1, alpha=1.0)
    frame = chunks([("d", 0, "cake oven"), ("d", 1, "cake"), ("d", 2, "goal match"), ("d", 3, "goal")])
    dv = pool_chunks(frame.sample(frac=1.0, random_state=1), WordAxisEncoder(), cfg)  # order within doc restored
    assert dv.doc_ids == ["d"] * 5 and dv.regions == [0, 1, 2, 3, 4]
    assert dv.centres == [0.5, 0.125, 0.375, 0.625, 0.875]
    assert dv.chunk_ids[1:] == ["d-0", "d-1", "d-2", "d-3"]  # chunk midpoints are .125 .375 .625 .875
    assert dv.char_starts[1:] == [0, 100, 200, 300]
    matrix = dv.matrix(6)
    assert matrix[1].argmax() == 0 and matrix[3].argmax() == 2  # region 1 is about cake, region 3 about goal


def test_top_candidates_dedupes_caps_and_marks_unmatched_docs() -> None:
    """Best score per (doc, template) over regions, min_score filter, top_k per doc, marker row when none."""
    enc = WordAxisEncoder()
    bank = enc.encode(["cake oven", "goal match", "tax"])
    loaded = LoadedIndex(build_index(bank, IndexConfig()), np.array(["t-bake", "t-sport", "t-tax"], dtype=object), {})
    cfg = EmbedConfig(regions=2, sigma=0.1, alpha=1.0)
    frame = chunks([("d1", 0, "cake oven"), ("d1", 1, "goal match"), ("d2", 0, "zzz")])
    dv = pool_chunks(frame, enc, cfg)
    out = top_candidates(dv, loaded, top_k=2, min_score=0.5)
    assert list(out.columns) == CANDIDATE_COLUMNS
    d1 = out[out["doc_id"] == "d1"].sort_values("template_id")
    assert d1["template_id"].tolist() == ["t-bake", "t-sport"]
    assert d1["region"].tolist() == [1, 2] and d1["chunk_id"].tolist() == ["d1-0", "d1-1"]
    assert (d1["score"] > 0.99).all()
    d2 = out[out["doc_id"] == "d2"]
    assert d2["template_id"].isna().all() and len(d2) == 1 and float(d2["score"].iloc[0]) < 0.5


class WordTokenizer:
    """Test double of a Hugging Face tokenizer: one token per known word, [CLS]=100 / [SEP]=101 around a window."""

    def __call__(self, texts: str | list[str], add_special_tokens: bool = True, **_: object) -> dict[str, list]:
        frame = (lambda ids: [100, *ids, 101]) if add_special_tokens else (lambda ids: ids)
        ids = [frame([WordAxisEncoder.words.index(w) if w in WordAxisEncoder.words else 99 for w in t.split()])
               for t in ([texts] if isinstance(texts, str) else texts)]  # fmt: skip
        return {"input_ids": ids[0] if isinstance(texts, str) else ids}

    def pad(self, enc: dict[str, list[list[int]]], **_: object) -> dict[str, torch.Tensor]:
        rows, width = enc["input_ids"], max(len(r) for r in enc["input_ids"])
        return {"input_ids": torch.tensor([r + [102] * (width - len(r)) for r in rows]),
                "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])}  # fmt: skip


class WordAxisTokenModel:
    """Test double of a sentence-transformers model for token pooling: a word's token vector is its axis."""

    tokenizer, max_seq_length, device = WordTokenizer(), 6, "cpu"  # 4 words per window

    def __getitem__(self, i: int) -> object:
        def transformer(features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            ids = features["input_ids"].clamp(max=len(WordAxisEncoder.words))
            return {"token_embeddings": torch.nn.functional.one_hot(ids, len(WordAxisEncoder.words) + 1)[..., :-1]}

        return transformer

    def get_sentence_embedding_dimension(self) -> int:
        return len(WordAxisEncoder.words)


def test_pool_tokens_covers_the_whole_document_beyond_one_window() -> None:
    """16 words read as windows of 4 (overlap 1): the last region covers the last words, which lie past the first
    window; a 2-word document (one window) gets its regions too; no chunk ids."""
    docs = pd.DataFrame({"doc_id": ["d", "s"], "text": ["cake oven " * 4 + "goal match " * 4, "tax zzz"]})
    cfg = EmbedConfig(pooling_unit="tokens", regions=2, sigma=0.1, alpha=1.0, window_overlap=1)
    dv = pool_tokens(docs, WordAxisTokenModel(), cfg)
    assert dv.doc_ids == ["d"] * 3 + ["s"] * 3 and dv.regions == [0, 1, 2] * 2 and set(dv.chunk_ids) == {None}
    matrix = dv.matrix(6)
    assert matrix[1].argmax() in (0, 1) and matrix[2].argmax() in (2, 3)  # cake/oven first, goal/match last
    np.testing.assert_allclose(matrix[0], [0.5, 0.5, 0.5, 0.5, 0, 0], atol=1e-6)  # global: 4 words, 4 times each
    assert matrix[4].argmax() == 4 and matrix[5].argmax() == 5  # "tax" then "zzz"


def test_top_candidates_keeps_per_doc_candidates() -> None:
    """per_doc (the paper's 6 candidates per document) caps the candidates below top_k, best first."""
    enc = WordAxisEncoder()
    bank = enc.encode(["cake oven", "cake", "oven"])
    loaded = LoadedIndex(build_index(bank, IndexConfig()), np.array(["t-both", "t-cake", "t-oven"], dtype=object), {})
    dv = pool_chunks(chunks([("d1", 0, "cake oven")]), enc, EmbedConfig(regions=1, sigma=0.1, alpha=1.0))
    assert top_candidates(dv, loaded, top_k=3, min_score=0.1)["template_id"].tolist()[0] == "t-both"
    assert top_candidates(dv, loaded, top_k=3, min_score=0.1, per_doc=1)["template_id"].tolist() == ["t-both"]
    assert len(top_candidates(dv, loaded, top_k=3, min_score=0.1, per_doc=2)) == 2
