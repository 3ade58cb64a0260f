"""Which engine builds the feature base: the local one (`prepare.build_feature_base`) or Spark
(`spark_engine.build_feature_base_spark`, `--engine spark` on train and refresh)."""

from __future__ import annotations

from sendtime.configs.settings import Settings
from sendtime.features.load import AFTER_END_REASON, DataFolder
from sendtime.features.prepare import FeatureBase, build_feature_base
from sendtime.features.tables import UNDECODABLE_REASON


def feature_base_on(engine: str, data: DataFolder, settings: Settings, progress: bool = False) -> FeatureBase:
    """The feature base of a loaded folder, on the local engine or on Spark (`--engine spark`).

    Spark (features/spark_engine.py) reads the folder again and does the per-event work (validation,
    identity, signals, local time) on its executors; the result equals the local engine's (tests/spark).
    The caller still holds the folder as loaded locally, for the run's fingerprint and rejects, so this
    spreads the work but does not lift the driver's memory limit. Two load rules the Spark engine does
    not apply yet (rows after the export's end, rows that are not UTF-8) fail here instead of giving a
    feature base that disagrees with the loaded folder."""
    if engine == "local":
        return build_feature_base(data, settings, progress=progress)
    if engine != "spark":
        raise ValueError(f"--engine {engine}: unknown engine; use --engine local or --engine spark")
    from sendtime.features.spark_engine import build_feature_base_spark  # pyspark only when asked

    unsupported = (
        set() if data.rejects.empty else {AFTER_END_REASON, UNDECODABLE_REASON} & set(data.rejects["reason"])
    )
    if unsupported:
        raise ValueError(
            f"--engine spark: {data.path} has rows rejected as {' and '.join(sorted(unsupported))}, a rule the "
            "Spark engine does not apply yet; use --engine local for this export"
        )
    return build_feature_base_spark(data.path, settings)
