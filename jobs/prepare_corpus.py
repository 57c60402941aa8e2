"""spark-submit entry point for the prepare_corpus stage.

    spark-submit --master yarn jobs/prepare_corpus.py \
        --documents s3://bucket/raw/ --output s3://bucket/run1 --profile emr

Same arguments as ``fi-spark prepare-corpus`` (``--help`` lists them). Under spark-submit the engine
defaults to the session spark-submit created (engine.mode=cluster). The fi_spark package must be
importable on the driver and executors (pip install on the cluster, or --py-files a built wheel).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare-corpus", *sys.argv[1:]]))
