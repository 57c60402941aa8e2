"""prepare.sentence_splitter=sparknlp: its wiring through prepare_corpus, and its errors where Spark NLP is missing.

The Spark NLP jars cannot be fetched here (no Maven Central), so the real DocumentAssembler + SentenceDetector
never run in these tests: a stand-in Transformer with the same output shape proves that the stage chunks at
the detector's offsets, and stub `sparknlp` modules reach the checks behind the Python import.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types

import pytest
from pyspark.ml import Transformer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fi_spark.config import ConfigError
from fi_spark.ingest import prepare_corpus, sentences
from fi_spark.schemas import CHUNKS
from fi_spark.text.chunking import chunk_text
from fi_spark.text.tokenizer import load_tokenizer
from tests.conftest import REPO

CLI = [sys.executable, "-m", "fi_spark.cli"]  # what the `fi-spark` console script runs
ENV = {k: v for k, v in os.environ.items() if k not in ("SPARK_CONNECT_MODE_ENABLED", "MLFLOW_TRACKING_URI")}

JAR = (
    "its jar com.johnsnowlabs.nlp:spark-nlp_2.13:7.0.0 on the cluster (spark-submit --packages, a Databricks "
    "cluster Maven library, or spark.jars.packages in EMR's spark-defaults classification)"
)
NO_PACKAGE = (
    "prepare.sentence_splitter=sparknlp needs the spark-nlp Python package on the driver (pip install "
    f"'fi-spark[sparknlp]', i.e. spark-nlp==7.0.0; on EMR in a bootstrap action) and {JAR}, "
    "or set prepare.sentence_splitter=regex"
)
NO_JVM = (
    "prepare.sentence_splitter=sparknlp drives Spark NLP's JVM classes through py4j, which engine.mode=embedded "
    f"has no access to: use engine.mode=local or cluster (spark-submit) with {JAR}, "
    "or set prepare.sentence_splitter=regex"
)
NO_JAR = (
    "prepare.sentence_splitter=sparknlp: the spark-nlp Python package is installed but the JVM has no "
    f"com.johnsnowlabs.nlp.DocumentAssembler: add {JAR}, or set prepare.sentence_splitter=regex"
)

# Two sentences of three 7-token clauses (21 tokens, MiniLM): at 16 tokens the regex must cut inside a
# sentence, where clause starts give whole clauses.
FARM = (
    "the farmers grow wheat up north, the traders sell grain in town, the bakers make bread every day. "
    "the river runs past the mill, the boats carry stone to sea, the children swim there in summer."
)
# An emoji first: JVM offsets (UTF-16) run one ahead of str indices after it.
SMILE = "\U0001f600 the sun is warm on the hill, the sheep eat grass by the wall, the dogs sleep in the yard all day."


@pytest.fixture
def stub_sparknlp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importable `sparknlp.base` / `sparknlp.annotator` without the real package (classes never built)."""
    package, base, annotator = (types.ModuleType(n) for n in ("sparknlp", "sparknlp.base", "sparknlp.annotator"))
    base.DocumentAssembler = type("DocumentAssembler", (), {})  # type: ignore[attr-defined]
    annotator.SentenceDetector = type("SentenceDetector", (), {})  # type: ignore[attr-defined]
    for module in (package, base, annotator):
        monkeypatch.setitem(sys.modules, module.__name__, module)


def test_cli_without_spark_nlp_exits_2_with_what_to_install(tmp_path):
    """`fi-spark prepare-corpus --set prepare.sentence_splitter=sparknlp` here: one sentence naming package and jar."""
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "farm", "text": FARM}) + "\n")
    out = tmp_path / "out"
    args = ["prepare-corpus", "--documents", str(docs), "--output", str(out), "--set", "tracking.enabled=false"]
    proc = subprocess.run(
        [*CLI, *args, "--set", "prepare.sentence_splitter=sparknlp"],
        capture_output=True, text=True, timeout=600, env=ENV, cwd=REPO,
    )  # fmt: skip
    # Where spark-nlp is installed, the embedded engine (no JVM) is what fails instead.
    expected = NO_PACKAGE if importlib.util.find_spec("sparknlp") is None else NO_JVM
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fi-spark: error: ")]
    assert errors == [f"fi-spark: error: {expected}"]
    assert not (out / "tables").exists(), "the stage failed before reading or writing anything"


def test_embedded_engine_is_refused_when_the_package_is_there(embedded_engine, stub_sparknlp):
    """With the Python package but Sail (no JVM in this process): the error says to run on a classic engine."""
    with pytest.raises(ConfigError) as caught:
        sentences.build_sentence_detector(embedded_engine)
    assert str(caught.value) == NO_JVM


def test_missing_jar_fails_at_stage_start(local_engine, make_ctx, stub_sparknlp, tmp_path):
    """Classic engine, Python package present, no jar: the JVM probe fails before the (missing) input is read."""
    assert sentences.jvm_has_class(local_engine.spark, "org.apache.spark.sql.SparkSession"), "the probe can say yes"
    ctx = make_ctx(local_engine, ["prepare.sentence_splitter=sparknlp"])
    with pytest.raises(ConfigError) as caught:
        prepare_corpus.run(ctx, str(tmp_path / "not-there.jsonl"))  # an InputError if the input came first
    assert str(caught.value) == NO_JAR


class ClauseDetector(Transformer):
    """Stands in for DocumentAssembler + SentenceDetector: a 'sentence' begins after each ', ' or '. ',
    reported like Spark NLP's annotations (array of structs with UTF-16 begin/end offsets)."""

    seen_columns: list[str] = []

    def _transform(self, dataset: DataFrame) -> DataFrame:
        ClauseDetector.seen_columns = list(dataset.columns)

        def clauses(text: str) -> list[dict]:
            begins = [0, *(i + 2 for i in range(len(text) - 2) if text[i : i + 2] in (", ", ". "))]
            ends = [b - 2 for b in begins[1:]] + [len(text) - 1]
            units = [len(text[:i].encode("utf-16-le")) // 2 for i in range(len(text) + 1)]
            return [
                {"annotatorType": "document", "begin": units[b], "end": units[e], "result": text[b : e + 1]}
                for b, e in zip(begins, ends)
            ]

        shape = "array<struct<annotatorType:string,begin:int,end:int,result:string>>"
        return dataset.withColumn(sentences.SENTENCES, F.udf(clauses, shape)(F.col("text")))


def test_detector_offsets_decide_the_chunks(local_engine, make_ctx, tmp_path, monkeypatch):
    """With the switch on, chunks end at the detector's sentence starts (here clauses), not at the regex's."""
    built = []
    monkeypatch.setattr(sentences, "build_sentence_detector", lambda engine: built.append(engine) or ClauseDetector())
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in (("farm", FARM), ("smile", SMILE))))
    settings = [
        "prepare.chunk_tokens=16",
        "prepare.chunk_overlap=0",
        "prepare.min_chars=50",
        "near_dedup.enabled=false",
    ]
    ctx = make_ctx(local_engine, [*settings, "prepare.sentence_splitter=sparknlp"])
    prepare_corpus.run(ctx, str(path))

    assert built == [local_engine] and ClauseDetector.seen_columns == ["doc_id", "text"]
    got = sorted(tuple(r) for r in ctx.store.read(CHUNKS).select("doc_id", "ordinal", "text").collect())
    assert got == [
        ("farm", 0, "the farmers grow wheat up north, the traders sell grain in town,"),
        ("farm", 1, "the bakers make bread every day. the river runs past the mill,"),
        ("farm", 2, "the boats carry stone to sea, the children swim there in summer."),
        # unconverted UTF-16 offsets would put each start one character late: "... on the hill, the" first
        ("smile", 0, "\U0001f600 the sun is warm on the hill,"),
        ("smile", 1, "the sheep eat grass by the wall,"),
        ("smile", 2, "the dogs sleep in the yard all day."),
    ]
    # The regex default on the same text: hard cuts inside the third clause of each 21-token sentence.
    regex = chunk_text(FARM, load_tokenizer("minilm"), 16, 0)
    assert [FARM[c.char_start : c.char_end] for c in regex] == [
        "the farmers grow wheat up north, the traders sell grain in town, the baker",
        "s make bread every day.",
        "the river runs past the mill, the boats carry stone to sea, the children",
        "swim there in summer.",
    ]
