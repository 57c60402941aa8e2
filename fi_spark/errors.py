"""Errors worded for the person running a job; the CLI prints them as one line and exits with code 2.

Kept free of pyspark so `fi_spark.cli` can catch them without importing Spark.
"""

from __future__ import annotations


class InputError(ValueError):
    """An input path that cannot be read, worded for the person running the job."""
