"""Benchmark: the encoder's backends side by side on real text, speed and agreement with the PyTorch baseline.

    python -m bench.encoder                          # 2,000 chunks, 3 rounds (minutes on 2 cores)
    python -m bench.encoder --chunks 4000 --rounds 5 --cache-dir /tmp/onnx

Chunks: the first documents of the benchmark corpus (real reviews, Usenet posts, news, book paragraphs),
normalized and chunked as prepare_corpus chunks them (prepare's tokenizer, chunk_tokens and chunk_overlap
defaults), whole documents only, until --chunks. Templates: the sample queries (queries.jsonl and
dolly_queries.jsonl), the side match searches. Each option is an EmbedConfig (embed.backend, quantize, threads,
batch_size, precision) loaded through fi_spark.embed.encoder.load_encoder exactly as the match stage loads it; the
baseline is PyTorch in float32 (`torch fp32`), `default` is EmbedConfig() as shipped; the ONNX
export is made (or read from the cache) before timing. Timing: every round encodes all chunks once with each
option, options interleaved, so machine load falls on all of them alike; the table shows the median round.
Agreement with the baseline: cosine of each chunk vector to the baseline's (min, mean),
and over chunks x templates the share of chunks whose top-1 template is the baseline's, and recall@10 of the
baseline's top-10 templates. docs/s counts the documents whose chunks were encoded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

import numpy as np

from fi_spark.config.embed import EmbedConfig
from fi_spark.config.text import PrepareConfig
from fi_spark.embed.encoder import encode, load_encoder
from fi_spark.embed.onnx import OnnxEncoder
from fi_spark.text.chunking import chunk_text
from fi_spark.text.normalize import normalize_text
from fi_spark.text.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "bench" / "corpus.jsonl.gz"
SAMPLE = REPO / "fi_spark" / "resources" / "sample"
BASELINE = "torch fp32"
OPTIONS = {  # name -> EmbedConfig overrides; the baseline first
    BASELINE: {"backend": "torch", "precision": "fp32", "batch_size": 64},  # the baseline as first measured
    "default": {},  # EmbedConfig() as shipped: torch, precision auto (bf16 on a CPU with native bf16)
    "torch bf16": {"backend": "torch", "precision": "bf16"},
    "torch fp32 batch 16": {"backend": "torch", "precision": "fp32", "batch_size": 16},
    "torch bf16 batch 32": {"backend": "torch", "precision": "bf16", "batch_size": 32},
    "onnx": {"backend": "onnx"},
    "onnx int8": {"backend": "onnx", "quantize": "int8"},
    "openvino": {"backend": "openvino"},  # precision auto: bf16 on a CPU with native bf16
    "openvino fp32": {"backend": "openvino", "precision": "fp32"},
    "openvino batch 8": {"backend": "openvino", "batch_size": 8},
    "openvino batch 16": {"backend": "openvino", "batch_size": 16},
    "openvino batch 32": {"backend": "openvino", "batch_size": 32},
    "openvino batch 64": {"backend": "openvino", "batch_size": 64},
    "openvino batch 256": {"backend": "openvino", "batch_size": 256},
    "onnx batch 16": {"backend": "onnx", "batch_size": 16},
    "onnx 1 thread": {"backend": "onnx", "threads": 1},
}


def real_chunks(path: Path, n_chunks: int) -> tuple[list[str], int]:
    """Chunk texts of the corpus's first whole documents, as prepare_corpus cuts them, and the document count."""
    prep = PrepareConfig()
    tok = load_tokenizer(prep.tokenizer)
    chunks: list[str] = []
    docs = 0
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = normalize_text(json.loads(line)["text"])
            found = chunk_text(text, tok, prep.chunk_tokens, prep.chunk_overlap)
            if not found:
                continue
            chunks += [text[c.char_start : c.char_end] for c in found]
            docs += 1
            if len(chunks) >= n_chunks:
                break
    return chunks, docs


def template_texts() -> list[str]:
    texts: list[str] = []
    for name in ("queries.jsonl", "dolly_queries.jsonl"):
        with open(SAMPLE / name, encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    return texts


def agreement(vecs: np.ndarray, base: np.ndarray, tvecs: np.ndarray, tbase: np.ndarray) -> tuple[float, ...]:
    """(cosine min, cosine mean, top-1 template share equal to the baseline's, recall@10 of the baseline's top-10)."""
    cos = (vecs * base).sum(axis=1)
    scores, scores_base = vecs @ tvecs.T, base @ tbase.T
    top, top_base = np.argsort(-scores, axis=1)[:, :10], np.argsort(-scores_base, axis=1)[:, :10]
    same_top1 = float((top[:, 0] == top_base[:, 0]).mean())
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, top_base, strict=True)]))
    return float(cos.min()), float(cos.mean()), same_top1, recall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--chunks", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache-dir", default=None, help="embed.cache_dir for the ONNX exports (default: the user's)")
    ap.add_argument("--options", nargs="*", default=list(OPTIONS)[1:], help=f"choose from {list(OPTIONS)[1:]}")
    args = ap.parse_args()

    chunks, docs = real_chunks(args.corpus, args.chunks)
    templates = template_texts()
    print(f"{len(chunks)} chunks of {docs} documents; {len(templates)} templates", flush=True)
    configs = {name: EmbedConfig(cache_dir=args.cache_dir, **OPTIONS[name]) for name in [BASELINE, *args.options]}
    models = {}
    for name, cfg in configs.items():
        start = time.perf_counter()
        models[name] = load_encoder(cfg)
        kind = "onnx" if isinstance(models[name], OnnxEncoder) else "torch"
        print(f"loaded {name} ({kind}) in {time.perf_counter() - start:.1f} s", flush=True)
        encode(models[name], chunks[:64], cfg.batch_size)  # warm-up

    seconds: dict[str, list[float]] = {name: [] for name in configs}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for name, cfg in configs.items():
            start = time.perf_counter()
            vectors[name] = encode(models[name], chunks, cfg.batch_size)
            seconds[name].append(time.perf_counter() - start)
        print(f"round {r + 1}: " + ", ".join(f"{n} {s[-1]:.1f} s" for n, s in seconds.items()), flush=True)
    tvectors = {name: encode(models[name], templates, cfg.batch_size) for name, cfg in configs.items()}

    base = statistics.median(seconds[BASELINE])
    print()
    columns = "option batch threads s_median chunks/s docs/s x_fp32 cos_min cos_mean top1_same recall@10".split()
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for name, cfg in configs.items():
        s = statistics.median(seconds[name])
        cmin, cmean, top1, rec = agreement(vectors[name], vectors[BASELINE], tvectors[name], tvectors[BASELINE])
        print(
            f"| {name} | {cfg.batch_size} | {cfg.threads or 'default'} | {s:.1f} | {len(chunks) / s:.1f} | "
            f"{docs / s:.1f} | {base / s:.2f} | {cmin:.4f} | {cmean:.5f} | {top1:.3f} | {rec:.3f} |"
        )
    best = max((n for n in configs if n != BASELINE), key=lambda n: base / statistics.median(seconds[n]))
    line = f"\nfastest option: {best}, {base / statistics.median(seconds[best]):.2f}x {BASELINE}'s docs/s"
    if "default" in configs:
        line += f"; the default: {base / statistics.median(seconds['default']):.2f}x"
    print(line)


if __name__ == "__main__":
    main()
