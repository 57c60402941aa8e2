"""Sentence starts from Spark NLP for prepare_corpus's chunking (``prepare.sentence_splitter=sparknlp``).

The default splitter is the regex of fi_spark.text.chunking: pure Python, nothing to install. Where the
cluster has Spark NLP, its rule-based SentenceDetector (a port of the Pragmatic Segmenter: abbreviations,
numbers, lists; no pretrained model to download) runs as Spark ML transformers on the kept documents --
DocumentAssembler (text -> ``fi_document``) then SentenceDetector (-> ``fi_sentences``) -- and each
sentence's ``begin`` becomes the ``sentence_starts`` column that the chunker uses instead of the regex
starts. Those offsets count UTF-16 code units, as JVM strings do; the chunker maps them to str indices.

Spark NLP is JVM code driven through py4j, so it needs a classic session (engine.mode local or cluster:
spark-submit, Databricks classic compute, EMR) with its jar on the classpath and the spark-nlp Python
package on the driver. Pinned: Spark NLP 7.0.0, whose jar must match the cluster's Spark
(``spark_nlp_coordinate``): Spark 3.5.x -> ``com.johnsnowlabs.nlp:spark-nlp_2.12:7.0.0``, Spark 4.0.0 ->
``...:spark-nlp-spark400_2.13:7.0.0``, Spark 4.0.1 and later 4.x -> ``...:spark-nlp_2.13:7.0.0``.
``build_sentence_detector`` checks the package, the engine and the jar when the stage starts and raises
one ConfigError (exit 2) naming what to install, before any input is read.
"""

from __future__ import annotations

import re
from typing import Any

from pyspark.ml import PipelineModel, Transformer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fi_spark.engine import Engine
from fi_spark.section import ConfigError

SPARK_NLP_VERSION = "7.0.0"  # the `sparknlp` extra in setup.py pins the same version (a unit test checks)
DOCUMENT = "fi_document"
SENTENCES = "fi_sentences"  # Spark NLP annotations: array<struct<annotatorType, begin, end, result, ...>>
STARTS = "sentence_starts"  # array<int>: each sentence's begin offset (UTF-16 code units)
PROBE_CLASS = "com.johnsnowlabs.nlp.DocumentAssembler"
_SWITCH = "prepare.sentence_splitter=sparknlp"
_OR_REGEX = "or set prepare.sentence_splitter=regex"


def spark_nlp_coordinate(spark_version: str) -> str:
    """The Maven coordinate of the Spark NLP jar for this Spark (Spark NLP's own artifact table for 7.0.0)."""
    m = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", spark_version or "")
    version = tuple(int(g) for g in m.groups()) if m else None
    if version is not None and version[0] == 3:
        artifact = "spark-nlp_2.12"
    elif version == (4, 0, 0):
        artifact = "spark-nlp-spark400_2.13"  # 4.0.0 changed Param binary-incompatibly; 4.0.1 changed it back
    else:
        artifact = "spark-nlp_2.13"
    return f"com.johnsnowlabs.nlp:{artifact}:{SPARK_NLP_VERSION}"


def _jar_hint(spark_version: str) -> str:
    return (
        f"its jar {spark_nlp_coordinate(spark_version)} on the cluster (spark-submit --packages, a Databricks "
        "cluster Maven library, or spark.jars.packages in EMR's spark-defaults classification)"
    )


def build_sentence_detector(engine: Engine) -> Transformer:
    """DocumentAssembler + SentenceDetector as one Transformer (text -> ``fi_sentences``), or a ConfigError.

    Called when the stage starts, so a cluster without Spark NLP fails before reading its input.
    """
    version = engine.caps.spark_version
    try:
        from sparknlp.annotator import SentenceDetector
        from sparknlp.base import DocumentAssembler
    except ImportError:
        raise ConfigError(
            f"{_SWITCH} needs the spark-nlp Python package on the driver (pip install 'fi-spark[sparknlp]', "
            f"i.e. spark-nlp=={SPARK_NLP_VERSION}; on EMR in a bootstrap action) and {_jar_hint(version)}, {_OR_REGEX}"
        ) from None
    if not engine.caps.spark_context:
        raise ConfigError(
            f"{_SWITCH} drives Spark NLP's JVM classes through py4j, which engine.mode={engine.caps.mode} has no "
            f"access to: use engine.mode=local or cluster (spark-submit) with {_jar_hint(version)}, {_OR_REGEX}"
        )
    if not jvm_has_class(engine.spark, PROBE_CLASS):
        raise ConfigError(
            f"{_SWITCH}: the spark-nlp Python package is installed but the JVM has no {PROBE_CLASS}: add "
            f"{_jar_hint(version)}, {_OR_REGEX}"
        )
    assembler = DocumentAssembler().setInputCol("text").setOutputCol(DOCUMENT)
    detector = SentenceDetector().setInputCols([DOCUMENT]).setOutputCol(SENTENCES)
    return PipelineModel(stages=[assembler, detector])


def jvm_has_class(spark: Any, name: str) -> bool:
    """Whether py4j resolves ``name`` to a class in this session's JVM (what the spark-nlp wrappers need)."""
    from py4j.java_gateway import JavaClass

    node = spark.sparkContext._jvm
    for part in name.split("."):
        node = getattr(node, part)
    return isinstance(node, JavaClass)


def with_sentence_starts(docs: DataFrame, detector: Transformer) -> DataFrame:
    """(doc_id, text) -> (doc_id, text, sentence_starts): the detector's sentence begin offsets per document."""
    annotated = detector.transform(docs.select("doc_id", "text"))
    return annotated.select("doc_id", "text", F.col(f"{SENTENCES}.begin").cast("array<int>").alias(STARTS))
