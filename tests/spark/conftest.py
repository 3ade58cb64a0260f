"""One local SparkSession for every Spark test (local[2], 4 shuffle partitions, no UI), stopped at the end."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark", reason="the Spark tests need the spark extra")
    if shutil.which("java") is None:
        pytest.skip("the Spark tests need Java (17)")
    from sendtime.spark_session import local_spark

    session = local_spark(app_name="sendtime-tests")
    yield session
    session.stop()
