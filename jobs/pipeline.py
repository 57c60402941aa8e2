"""spark-submit entry point for the whole pipeline.

    spark-submit jobs/pipeline.py --queries s3://bucket/queries/ --documents s3://bucket/docs/ --output s3://bucket/run1

Same arguments as ``fi-spark pipeline`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
