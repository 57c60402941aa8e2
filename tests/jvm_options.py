"""JVM flags for the classic-Spark JVMs the tests start (in-process local[2], spark-submit, standalone daemons).

Test jobs are tiny: their time is JVM start-up and JIT compilation, not steady-state work. C1 only
(`TieredStopAtLevel=1`: no C2 compiler threads competing for the 2 cores) and the serial collector
(no parallel GC threads) cut the spark-submit pipeline test (tests/integration/test_cli_and_jobs.py) from
170 s wall / 132 s user CPU to 126 s / 72 s on this 2-core machine, measured side by side under the same
load. Tests only: a real cluster's long jobs want C2's faster code.
"""

from __future__ import annotations

FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
SPARK_CONF = {"spark.driver.extraJavaOptions": FAST_JVM, "spark.executor.extraJavaOptions": FAST_JVM}


def submit_conf() -> list[str]:
    """The same flags as spark-submit `--conf` arguments."""
    return [arg for key, value in SPARK_CONF.items() for arg in ("--conf", f"{key}={value}")]
