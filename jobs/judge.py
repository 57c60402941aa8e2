"""spark-submit entry point for the judge stage.

LLM judge scores each pair with a rubric -> judged (threshold applied as a view).

    spark-submit jobs/judge.py --output s3://bucket/run1

Same arguments as ``fi-spark judge`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["judge", *sys.argv[1:]]))
