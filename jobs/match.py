"""spark-submit entry point for the match stage.

Embed documents (Gaussian coverage pooling), retrieve templates with caps -> matches.

    spark-submit jobs/match.py --output s3://bucket/run1

Same arguments as ``fi-spark match`` (``--help`` lists them).
"""

import sys

from fi_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["match", *sys.argv[1:]]))
