"""spark-submit entry point for the ingest_queries stage.

Read, normalize and dedup user queries -> queries, query_rejects.

    spark-submit jobs/ingest_queries.py --queries s3://bucket/queries/ --output s3://bucket/run1

Same arguments as ``fi-spark ingest-queries`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest-queries", *sys.argv[1:]]))
