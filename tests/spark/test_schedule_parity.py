"""`sendtime schedule --engine spark` gives the local engine's plan, row for row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.serving.reasons import REASON_BUDGET
from sendtime.serving.schedule import run_schedule

pytestmark = pytest.mark.spark

START, END = "2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z"


@pytest.fixture(scope="module")
def audience_file(small_world, tmp_path_factory):
    """A few hundred rows: known people (e-mail and/or phone), new contacts, empty and invalid ones,
    national phone formats, and people listed twice."""
    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet")
    rng = np.random.default_rng(1)
    known = people.sample(300, random_state=1)[["email", "phone"]].reset_index(drop=True)
    national = (
        known["phone"].dropna().head(3).str.replace(r"^\+1(\d{3})(\d{3})(\d{4})$", r"(\1) \2-\3", regex=True)
    )
    odd = pd.DataFrame({
        "email": [None, "", "broken@", known["email"].dropna().iloc[0], "brand.new@example.com", None, "NEW.Two@Example.com",
                  None, None, None],
        "phone": [None, " ", "123", None, "+13125550142", "+14155550142", None, *national],
    })  # fmt: skip
    frame = pd.concat([known, odd, known.head(8)], ignore_index=True)  # the last 8 repeat people
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    frame.insert(0, "ref", [f"R{i:03d}" for i in range(len(frame))])
    frame["segment"] = rng.choice(["a", "b"], len(frame))
    path = tmp_path_factory.mktemp("audience") / "audience.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "options",
    [
        {"max_sms": 15, "max_per_hour": {"email": 12, "sms": 2}},
        {"max_sms": 15, "max_per_hour": {"email": 12}, "holdout": 0.15, "explore": 0.1, "seed": 4},
    ],
    ids=["budget-and-caps", "with-holdout-and-exploration"],
)
def test_spark_plan_equals_the_local_plan(
    spark, trained_champion, test_settings, audience_file, tmp_path, options
):
    plans, printed = {}, {}
    for engine in ("local", "spark"):
        out = tmp_path / f"plan-{engine}.parquet"
        lines: list[str] = []
        assert run_schedule(audience_file, START, END, out, test_settings, engine=engine, echo=lines.append,
                            **options) == 0  # fmt: skip
        plans[engine], printed[engine] = pd.read_parquet(out), "\n".join(lines)
    local, on_spark = plans["local"], plans["spark"]

    assert len(local) == len(on_spark) == len(pd.read_csv(audience_file))
    np.testing.assert_allclose(
        on_spark["expected_engagement"], local["expected_engagement"], rtol=0, atol=1e-9
    )
    pd.testing.assert_frame_equal(local, on_spark, check_exact=True)  # every row, channel, time and reason

    # the limits bind, so the plan really was decided globally
    sms_rows = local["channel"] == "sms"
    assert sms_rows.sum() == options["max_sms"] and local["reason"].str.contains(REASON_BUDGET).any()
    for channel, cap in options["max_per_hour"].items():
        assert local[local["channel"] == channel].groupby("send_at").size().max() <= cap
    assert local["reason"].str.contains("send-rate cap").any()  # rows moved to another hour by a cap
    assert local["reason"].str.startswith("duplicate").sum() >= 8
    assert "model version" in printed["spark"] and "resolve + score (spark)" in printed["spark"]


def test_spark_plan_equals_the_local_plan_with_declared_timezones(
    spark, trained_champion, test_settings, audience_file, tmp_path
):
    """A `timezone` column (valid, blank and unreadable names) reaches the executors: the same plan."""
    frame = pd.read_csv(audience_file, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(2)
    frame["timezone"] = rng.choice(
        ["", "Europe/London", "Australia/Sydney", "Mars/Base", "America/Denver"], len(frame)
    )
    path = tmp_path / "audience-with-zones.csv"
    frame.to_csv(path, index=False)
    plans = {}
    for engine in ("local", "spark"):
        out = tmp_path / f"plan-{engine}.parquet"
        assert (
            run_schedule(path, START, END, out, test_settings, engine=engine, echo=lambda _: None, max_sms=30)
            == 0
        )
        plans[engine] = pd.read_parquet(out)
    pd.testing.assert_frame_equal(plans["local"], plans["spark"], check_exact=True)
    bad = plans["local"]["timezone"] == "Mars/Base"
    assert bad.any() and plans["local"].loc[bad, "reason"].str.contains("invalid timezone").all()
    assert not (plans["local"].loc[bad, "channel"] == "sms").any()
