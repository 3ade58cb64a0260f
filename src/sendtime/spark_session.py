"""A small local SparkSession for the Spark engines (`--engine spark`); nothing happens at import.

The engines run Python on the executors (`mapInPandas`, `applyInPandas`), so the workers must use the
same interpreter, and with it the same sendtime, pandas and NumPy, as the driver: `PYSPARK_PYTHON`
and `PYSPARK_DRIVER_PYTHON` are set to `sys.executable` unless already set. Timestamps cross the
JVM as UTC (`spark.sql.session.timeZone=UTC`) and Parquet nanosecond timestamps are read as integer
nanoseconds (`spark.sql.legacy.parquet.nanosAsLong`) so that no event loses precision on the way.

On a cluster, build your own session (with the spark extra installed on every node) and pass it to
the engines instead; `configure_session` applies the two settings they rely on.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "2g",
    "spark.sql.adaptive.enabled": "true",
    "spark.python.worker.reuse": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "100000",  # fewer, larger pandas batches per task
}


def local_spark(
    master: str = "local[2]",
    app_name: str = "sendtime",
    shuffle_partitions: int = 4,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """The local SparkSession the engines use by default (created once, then reused by getOrCreate).

    `master` local[2] and 4 shuffle partitions suit a laptop or a CI runner; the UI is off. Raises a
    clear ImportError without the `spark` extra.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the Spark engine needs the spark extra: pip install 'sendtime[spark]' (and Java 17)"
        ) from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {
        **LOCAL_CONF,
        **ENGINE_CONF,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        **(conf or {}),
    }
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return configure_session(spark)


def configure_session(spark: SparkSession) -> SparkSession:
    """Apply the runtime settings the engines rely on to any session (UTC, exact Parquet timestamps)."""
    for key, value in ENGINE_CONF.items():
        spark.conf.set(key, value)
    return spark
