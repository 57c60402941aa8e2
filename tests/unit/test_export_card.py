"""Dataset card rendering (fi_spark.export.card)."""

from __future__ import annotations

from fi_spark.cost import GpuRates, StageCost, cost_rows
from fi_spark.export.card import CardFunnelRow, CardInputs, ShardStat, SourceStat, render_card


def inputs(**overrides) -> CardInputs:
    base: dict = {
        "dataset_name": "demo-set",
        "shards": [
            ShardStat("train", "data/train-00000-of-00001.parquet", "parquet", 90, 9000, 12345),
            ShardStat("train", "data/train-00000-of-00001.jsonl", "jsonl", 90, 9000, 23456),
            ShardStat("validation", "data/validation-00000-of-00001.parquet", "parquet", 10, 1000, 2345),
            ShardStat("validation", "data/validation-00000-of-00001.jsonl", "jsonl", 10, 1000, 3456),
        ],
        "sources": [SourceStat("wiki", 250, 60, "CC BY-SA 3.0"), SourceStat("news", 250, 40, "CC BY-SA 3.0")],
        "funnel": [
            CardFunnelRow("matches", 300, 300),
            CardFunnelRow("instantiate", 300, 150),
            CardFunnelRow("judge", 150, 100),
        ],
        "rejects": {"instantiate/ungrounded": 120, "instantiate/unfilled_slots": 30, "judge/below_threshold": 50},
        "models": {"instantiate": "smollm2-135m", "judge": "smollm2-135m"},
        "prompts": {"instantiate": "instantiate.v1+abcd1234", "judge": "judge.v1+00ff00ff"},
        "filters": ["grounding >= 0.80", "judge score >= 3 on 1..5"],
        "tokenizer": "minilm",
        "columns": {"doc_id": "source document id"},
    }
    base.update(overrides)
    return CardInputs(**base)


def test_card_front_matter_declares_splits_and_license():
    """The YAML header names the splits' files, the single shared license and the size bucket."""
    card = render_card(inputs())
    header = card.split("---")[1]
    assert "license: CC BY-SA 3.0" in header
    assert "  - split: train\n    path: data/train-*.parquet" in header
    assert "  - split: validation\n    path: data/validation-*.parquet" in header
    assert "- n<1K" in header


def test_card_counts_each_format_once():
    """Splits table counts rows of one format only (Parquet and JSONL hold the same rows)."""
    card = render_card(inputs())
    assert "| train | 90 | 9,000 |" in card
    assert "| validation | 10 | 1,000 |" in card
    assert "\n100 instruction/answer pairs grounded" in card


def test_card_lists_sources_models_filters_funnel_and_rejects():
    """Every section a user needs is present, with the numbers given."""
    card = render_card(inputs())
    for expected in (
        "| wiki | 250 | 60 | CC BY-SA 3.0 |",
        "| instantiate | smollm2-135m | see the model's own card | instantiate.v1+abcd1234 |",
        "- grounding >= 0.80",
        "| instantiate | 300 | 150 | 150 |",
        "| instantiate/ungrounded | 120 |",
        "| data/train-00000-of-00001.jsonl | train | 90 | 9,000 | 23,456 |",
        "| doc_id | source document id |",
        "`minilm` tokenizer",
    ):
        assert expected in card, expected
    assert card.index("instantiate/ungrounded") < card.index("judge/below_threshold") < card.index("unfilled_slots")


def test_mixed_or_unknown_licenses_are_other_and_pipes_are_escaped():
    """Several licenses give `license: other`; table cells cannot break the table."""
    card = render_card(
        inputs(sources=[SourceStat("a|b", 1, 1, "MIT"), SourceStat("c", 1, 1, "unknown (set export.licenses)")])
    )
    assert "license: other" in card
    assert "| a\\|b | 1 | 1 | MIT |" in card


def test_empty_export_still_renders():
    """No shards and no rejects produce a valid, honest card."""
    card = render_card(inputs(shards=[], rejects={}))
    assert "0 instruction/answer pairs" in card and "No rows were rejected." in card
    assert "configs:" not in card


def test_card_states_generation_cost_per_pair_and_its_assumptions():
    """The cost section lists each LLM stage's spend, per pair and estimated, with the rates it assumed."""
    rates = GpuRates(3.6, 1_000.0, 10_000.0)
    stages = [
        StageCost("instantiate", 300, 150_000, 90_000, 30_000, 600.0),
        StageCost("judge", 150, 30_000, 0, 150, 75.0),
    ]
    card = render_card(inputs(cost=cost_rows(stages, kept=100, rates=rates), gpu_rates=rates))
    section = card.split("## Generation cost")[1].split("## Metadata columns")[0]
    # instantiate: 60,000 uncached prompt tokens at 10k/s + 30,000 generated at 1k/s = 36 GPU-s = 0.01 GPU-h = $0.036
    assert "| instantiate | 300 | 150,000 | 90,000 | 30,000 | 600.0 | 300.0 | 6.00 | 0.01 | 0.036 |" in section
    # judge: 3 + 0.15 = 3.15 GPU-s; total 39.15 GPU-s = $0.03915, $391.50 per million pairs
    assert "| total | 450 | 180,000 | 90,000 | 30,150 | 675.0 | 301.5 | 6.75 | 0.0109 | 0.0392 |" in section
    assert "these 100 pairs" in section and "About $391.50 per million pairs" in section
    assert "1,000 generated and 10,000 uncached prompt tokens per second per GPU and $3.6 per GPU-hour" in section


def test_card_without_ledger_has_no_cost_section():
    """A dataset whose run kept no ledger (or sent nothing) says nothing about cost rather than zeros."""
    assert "## Generation cost" not in render_card(inputs())
