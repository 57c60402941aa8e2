"""Profiles checked at load: chunk tokens vs the embedder's window, tokenizer vs embedder, Delta vs Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from fi_spark.config import ConfigError, EngineConfig, load_config
from fi_spark.config.checks import check_delta_package
from fi_spark.engine import EngineError, check_delta_runtime

# conf/databricks.yaml before the fix: BGE-M3 chunks at 512 tokens, embedded by the default MiniLM
OLD_DATABRICKS = "prepare:\n  chunk_tokens: 512\n  chunk_overlap: 64\n  tokenizer: BAAI/bge-m3\n"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "profile.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("profile", ["local", "fineinstructions", "databricks", "emr"])
def test_shipped_profiles_are_consistent(profile: str) -> None:
    """Every shipped profile passes the cross-section checks."""
    assert load_config(profile) is not None


def test_bge_chunks_embedded_by_minilm_are_refused_with_one_sentence_each(tmp_path: Path) -> None:
    """The old databricks profile: one sentence for the tokenizer, one for the window, both naming the fix."""
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, OLD_DATABRICKS))
    message = str(err.value)
    assert (
        "prepare.tokenizer=BAAI/bge-m3 counts chunks in bge-m3 tokens but embed.model=minilm embeds with the "
        "minilm tokenizer; set prepare.tokenizer to the embedder's tokenizer (minilm)." in message
    )
    assert (
        "prepare.chunk_tokens=512 is longer than the 256-token window of embed.model=minilm, so every chunk "
        "would be cut before it is embedded; set prepare.chunk_tokens <= 256." in message
    )


def test_window_follows_max_seq_length_and_token_pooling(tmp_path: Path) -> None:
    """embed.max_seq_length sets the window; token pooling embeds documents, not chunks, so no window check."""
    with pytest.raises(ConfigError, match=r"longer than the 128-token window"):
        load_config("local", ["embed.max_seq_length=128", "prepare.chunk_tokens=200"])
    cfg = load_config("local", ["embed.pooling_unit=tokens", "prepare.chunk_tokens=512"])
    assert cfg.prepare.chunk_tokens == 512


def test_bge_family_tokenizer_matches_the_released_embedder() -> None:
    """The fineinstructions embedder is BGE-M3-derived: BGE-M3 chunks are consistent, MiniLM ones are not."""
    assert load_config("fineinstructions").prepare.tokenizer == "BAAI/bge-m3"
    with pytest.raises(ConfigError, match=r"set prepare.tokenizer to the embedder's tokenizer \(BAAI/bge-m3\)"):
        load_config("fineinstructions", ["prepare.tokenizer=minilm"])


def test_delta_4_on_spark_3_5_names_both_mismatches() -> None:
    """The old emr.yaml coordinate on EMR 7.x (Spark 3.5, Scala 2.12): wrong Delta line and wrong Scala."""
    assert check_delta_package("io.delta:delta-spark_2.13:4.0.0", "3.5.1-amzn-0") == [
        "engine.delta_package=io.delta:delta-spark_2.13:4.0.0 is Delta 4.0, built for Spark 4.0, but this cluster "
        "runs Spark 3.5.1-amzn-0; name io.delta:delta-spark_2.12:3.2.0.",
        "engine.delta_package=io.delta:delta-spark_2.13:4.0.0 is built for Scala 2.13, but Spark 3.5.1-amzn-0 runs "
        "Scala 2.12; name io.delta:delta-spark_2.12:3.2.0.",
    ]


@pytest.mark.parametrize(
    ("coordinate", "spark", "expected"),
    [
        ("io.delta:delta-spark_2.12:3.2.0", "3.5.1", 0),
        ("io.delta:delta-spark_2.13:4.0.0", "4.0.0", 0),
        ("io.delta:delta-spark_2.12:3.2.0", "4.0.1", 2),  # Delta 3 on Spark 4, and Scala 2.12 on Spark 4.0
        ("io.delta:delta-spark_2.13:3.2.0", "3.5.0", 1),  # right Delta line, Scala 2.13 build on a 2.12 Spark
        ("io.delta:delta-spark_2.12:4.0.0", None, 1),  # Delta 4 exists for Scala 2.13 only (no Spark needed)
        ("delta-spark", None, 1),
    ],
)
def test_delta_coordinate_cases(coordinate: str, spark: str | None, expected: int) -> None:
    """One sentence per mismatch of a coordinate with itself and with the running Spark."""
    assert len(check_delta_package(coordinate, spark)) == expected


def test_engine_start_refuses_a_mismatched_delta_jar_but_not_on_sail() -> None:
    """The running Spark decides on JVM engines; embedded Sail writes Delta without the jar."""
    with pytest.raises(EngineError, match=r"built for Spark 4.0, but this cluster runs Spark 3.5.2"):
        check_delta_runtime(EngineConfig(mode="cluster", delta_package="io.delta:delta-spark_2.13:4.0.0"), "3.5.2")
    check_delta_runtime(EngineConfig(mode="embedded", delta_package="io.delta:delta-spark_2.13:4.0.0"), "3.5.2")
    check_delta_runtime(EngineConfig(mode="cluster", delta_package="io.delta:delta-spark_2.12:3.2.0"), "3.5.2")


def test_emr_profile_names_the_spark_3_5_coordinate() -> None:
    """conf/emr.yaml names Delta 3.x for Scala 2.12, the line EMR 7.x (Spark 3.5) runs."""
    coordinate = load_config("emr").engine.delta_package
    assert coordinate == "io.delta:delta-spark_2.12:3.2.0"
    assert check_delta_package(coordinate, "3.5.1-amzn-0") == []


def test_judge_must_see_the_whole_shown_document() -> None:
    """instantiate.source=document: a judge cut shorter than the instantiator's text is refused with the fix."""
    with pytest.raises(ConfigError) as err:
        load_config("fineinstructions", ["judge.max_source_chars=3000"])
    assert (
        "judge.max_source_chars=3000 is smaller than instantiate.max_source_chars=24000, so the judge would not see "
        "all of the document the instantiator answered from; set judge.max_source_chars=24000." in str(err.value)
    )
    assert load_config("local", ["judge.max_source_chars=500"]).instantiate.source == "chunk"
