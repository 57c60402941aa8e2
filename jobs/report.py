"""spark-submit entry point for the report stage.

HTML report with plots of the whole run.

    spark-submit jobs/report.py --output s3://bucket/run1

Same arguments as ``fi-spark report`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
