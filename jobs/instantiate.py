"""spark-submit entry point for the instantiate stage.

LLM: fill each matched template from its document and answer -> pairs.

    spark-submit jobs/instantiate.py --output s3://bucket/run1

Same arguments as ``fi-spark instantiate`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["instantiate", *sys.argv[1:]]))
