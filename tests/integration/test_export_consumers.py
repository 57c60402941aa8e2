"""The export as its real consumers read it: Hugging Face `datasets` and a tokenizer's chat template.

The shards come from the export stage of the small run (tests/integration/small_run.py, shared with the
notebook test): five final pairs in train and validation shards, Parquet and JSONL. `datasets` loads them
with the split of each file taken from its name (`<split>-<i>-of-<n>.<ext>`), and also as a dataset folder
through the card's own `configs:` block; every `messages` then renders with the chat template of the
SmolLM2 tokenizer that the local vLLM install converts (skipped, saying so, where it is not installed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from small_run import shared_run  # noqa: E402 - a helper module beside this file

from fi_spark.config.llm import LocalLLMServerConfig  # noqa: E402
from fi_spark.serving.local import model_dir  # noqa: E402

SHARD = re.compile(r"^(?P<split>[a-z]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.(?P<ext>parquet|jsonl)$")
MODEL_DIR = model_dir(LocalLLMServerConfig())  # the local server's converted default model (SmolLM2-135M-Instruct)


@pytest.fixture(scope="module")
def export_dir(_embedded, tmp_path_factory) -> Path:
    return shared_run(_embedded, tmp_path_factory) / "export"


@pytest.fixture(scope="module")
def stats(export_dir) -> dict:
    return json.loads((export_dir / "stats.json").read_text())


def data_files(export_dir: Path, ext: str) -> dict[str, list[str]]:
    """split -> its shard files, from the file names alone."""
    files: dict[str, list[str]] = {}
    for path in sorted((export_dir / "data").iterdir()):
        found = SHARD.match(path.name)
        assert found, f"{path.name} does not follow <split>-NNNNN-of-NNNNN.<ext>"
        if found["ext"] == ext:
            files.setdefault(found["split"], []).append(str(path))
    return files


def load(export_dir: Path, ext: str, cache: Path):
    builder = {"parquet": "parquet", "jsonl": "json"}[ext]
    return datasets.load_dataset(builder, data_files=data_files(export_dir, ext), cache_dir=str(cache))


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_load_dataset_splits_by_shard_names(export_dir, stats, ext, tmp_path):
    """load_dataset(<format>, data_files=split -> shards) gives each split exactly the pairs stats.json lists."""
    ds = load(export_dir, ext, tmp_path / "hf")
    assert {name: len(split) for name, split in ds.items()} == stats["splits"] == {"train": 3, "validation": 2}
    ids = [i for split in ds.values() for i in split["id"]]
    assert len(ids) == len(set(ids)) == stats["rows"] == 5
    for split in ds.values():
        assert {"id", "messages", "doc_id", "template_id", "judge_score", "grounding"} <= set(split.column_names)
        for messages in split["messages"]:
            assert [m["role"] for m in messages] == ["user", "assistant"]
            assert all(isinstance(m["content"], str) and m["content"] for m in messages)


def test_card_configs_load_the_folder_as_a_dataset(export_dir, stats, tmp_path):
    """load_dataset(<export folder>) reads the card's `configs:` block and finds the same splits and rows."""
    ds = datasets.load_dataset(str(export_dir), cache_dir=str(tmp_path / "hf"))
    assert {name: len(split) for name, split in ds.items()} == stats["splits"]
    parquet = load(export_dir, "parquet", tmp_path / "hf2")
    for name in ds:
        assert sorted(ds[name]["id"]) == sorted(parquet[name]["id"])


def test_every_messages_renders_with_a_chat_template(export_dir, tmp_path):
    """SmolLM2's chat template renders every record: each turn's text appears, in order, inside its role's markers."""
    if not (MODEL_DIR / "tokenizer_config.json").is_file():
        pytest.skip(f"no converted SmolLM2 tokenizer at {MODEL_DIR}: run `fi-spark serve-llm --install-only` first")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    ds = load(export_dir, "parquet", tmp_path / "hf")
    rendered = 0
    for split in ds.values():
        for messages in split["messages"]:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
            user, answer = messages[0]["content"], messages[1]["content"]
            assert f"<|im_start|>user\n{user}<|im_end|>" in text
            assert f"<|im_start|>assistant\n{answer}<|im_end|>" in text
            assert text.index(user) < text.index(answer)
            prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
            assert prompt.endswith("<|im_start|>assistant\n") and text.startswith(prompt)
            rendered += 1
    assert rendered == 5
