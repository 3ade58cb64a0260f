"""The Spark engine of the feature base and the profiles equals the local engine, exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.features import suppression
from sendtime.features.load import load_folder
from sendtime.features.prepare import build_feature_base
from sendtime.features.profiles import build_profiles

pytestmark = pytest.mark.spark

PROFILE_ARRAYS = ("shape", "response", "cohort_shape", "cohort_response", "cohort_rates", "population_shape",
                  "population_response", "kernel")  # fmt: skip
BASE_TABLES = ("subscribers", "addresses", "sends", "engagements", "optouts", "rejects")


@pytest.fixture(scope="module")
def messy_world(small_world, tmp_path_factory):
    """The small world as a messy CSV export: deliveries but no sends, a machine_open flag, unusable rows
    (bad times, channels, addresses), national phone formats, timestamps with and without Z, ties in
    time, and no subscribers table (timezones from phones and activity)."""
    rng = np.random.default_rng(5)
    events = pd.read_parquet(small_world / "events.parquet")
    events = events[events["event_type"] != "send"].reset_index(drop=True)
    events = events.iloc[: len(events) // 2].reset_index(drop=True)  # keep the test quick
    stamps = events["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    events["timestamp"] = stamps + np.where(rng.random(len(events)) < 0.5, "Z", "")
    events["machine_open"] = rng.choice(["true", "false", "", "yes"], len(events), p=[0.05, 0.5, 0.4, 0.05])
    n = len(events)
    bad = rng.choice(n, 50, replace=False)
    events.loc[bad[:10], "timestamp"] = "not a time"
    events.loc[bad[10:20], "channel"] = "fax"
    events.loc[bad[20:30], "address"] = "broken-address"
    events.loc[bad[30:40], "channel"] = " EMAIL"
    events.loc[bad[40:], "address"] = ""
    sms = np.flatnonzero(events["channel"].eq("sms").to_numpy())[:300]
    events.loc[sms, "address"] = events.loc[sms, "address"].str.replace(
        r"^\+1(\d{3})(\d{3})(\d{4})$", r"(\1) \2-\3", regex=True
    )
    # bounces of every type and spelling: runs of them (every delivery of a few addresses, whose opens
    # and clicks are removed), and single ones followed by deliveries (the first success after each
    # bounce is kept, on both engines alike)
    delivered = np.flatnonzero(
        (events["event_type"].eq("delivered") & events["channel"].eq("email")).to_numpy()
    )
    person = events["address"].str.strip().str.lower()  # an address comes in several spellings
    runs = person[delivered].drop_duplicates().head(6)
    bounced = np.union1d(
        delivered[person[delivered].isin(runs).to_numpy()], rng.choice(delivered, 400, replace=False)
    )
    events.loc[bounced, "event_type"] = "bounce"
    events.loc[bounced, "bounce_type"] = rng.choice(["soft", " SOFT", "", "hard", "transient"], len(bounced),
                                                    p=[0.4, 0.1, 0.3, 0.1, 0.1])  # fmt: skip
    in_runs = person.isin(runs) & events["event_type"].eq("bounce")
    events.loc[in_runs, "bounce_type"] = rng.choice(["soft", "", "Soft"], int(in_runs.sum()))  # never hard
    answers = person.isin(runs) & events["event_type"].isin(["open", "click"])
    events.loc[answers, "event_type"] = "conversion"  # nothing between their bounces: runs that suppress
    tie = rng.choice(n - 1, 300, replace=False)
    events.loc[tie + 1, "timestamp"] = events.loc[tie, "timestamp"].to_numpy()
    folder = tmp_path_factory.mktemp("messy-world")
    events.to_csv(folder / "events.csv", index=False)
    (folder / "identity_links.parquet").write_bytes((small_world / "identity_links.parquet").read_bytes())
    return folder


def _assert_same_profiles(local, spark) -> None:
    assert local.table["subscriber_id"].tolist() == spark.table["subscriber_id"].tolist()
    pd.testing.assert_frame_equal(local.table, spark.table, check_exact=True)
    for name in PROFILE_ARRAYS:
        a, b = getattr(local, name), getattr(spark, name)
        assert a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b), name
    pd.testing.assert_frame_equal(local.addresses, spark.addresses, check_exact=True)
    assert local.cohorts == spark.cohorts and local.shrinkage == spark.shrinkage
    assert (local.as_of, local.has_sends, local.data_span) == (spark.as_of, spark.has_sends, spark.data_span)


def test_profiles_on_spark_equal_the_local_engine(spark, small_world, test_settings):
    from sendtime.features.spark_engine import build_profiles_spark

    base = build_feature_base(load_folder(small_world, test_settings.data), test_settings)
    as_of = base.span[1] - pd.Timedelta(days=5)  # a point in time: later events must not count
    local = build_profiles(base, as_of, test_settings.profiles)
    on_spark = build_profiles_spark(small_world, as_of, test_settings, spark)
    _assert_same_profiles(local, on_spark)
    assert len(local) > 500 and (local.table["tz_source"] == "activity").any()


def test_messy_csv_feature_base_on_spark_equals_the_local_engine(spark, messy_world, test_settings):
    from sendtime.features.spark_engine import build_feature_base_spark
    from sendtime.features.spark_load import load_events_spark

    data = load_folder(messy_world, test_settings.data)
    local = build_feature_base(data, test_settings)
    on_spark = build_feature_base_spark(messy_world, test_settings, spark)
    for name in BASE_TABLES:
        pd.testing.assert_frame_equal(
            getattr(local, name), getattr(on_spark, name), check_exact=True, obj=name
        )
    assert local.stats == on_spark.stats and local.has_sends == on_spark.has_sends
    assert local.stats["machine_opens_flagged"] > 0 and local.stats["unusable_addresses"] > 0
    assert len(local.rejects) and (local.subscribers["tz_source"] == "default").any()  # activity: per profile

    loaded = load_events_spark(messy_world, test_settings, spark)  # the load's rejects, numbered by file row
    loaded.unpersist()
    pd.testing.assert_frame_equal(data.rejects, loaded.folder.rejects, check_exact=True)
    assert data.raw_rows == loaded.folder.raw_rows and len(data.rejects) > 20

    kinds = set(local.optouts["kind"])
    assert {
        suppression.REACHED,
        suppression.BOUNCED,
        suppression.HARD_BOUNCED,
        suppression.UNSUBSCRIBED,
    } <= kinds

    as_of = local.span[1] + pd.Timedelta(seconds=1)
    profiles = build_profiles(local, as_of, test_settings.profiles)
    _assert_same_profiles(profiles, build_profiles(on_spark, as_of, test_settings.profiles))
    assert profiles.table["email_optout_reason"].str.contains("bounces in a row").any()
