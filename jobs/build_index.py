"""spark-submit entry point for the build_index stage.

Embed template descriptions, build a versioned FAISS index artifact.

    spark-submit jobs/build_index.py --output s3://bucket/run1

Same arguments as ``fi-spark build-index`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-index", *sys.argv[1:]]))
