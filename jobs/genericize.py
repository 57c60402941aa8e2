"""spark-submit entry point for the genericize stage.

LLM: queries -> <fi> templates + compatible-document descriptions -> templates.

    spark-submit jobs/genericize.py --output s3://bucket/run1

Same arguments as ``fi-spark genericize`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["genericize", *sys.argv[1:]]))
