"""spark-submit entry point for the export stage.

Chat-format Parquet/JSONL shards, dataset card, token counts.

    spark-submit jobs/export.py --output s3://bucket/run1

Same arguments as ``fi-spark export`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
