"""The real `.venv/bin/sendtime schedule` on a real champion: CSV in -> Parquet out, Parquet in -> CSV out,
the plan contract, the summary and the plot; and clear one-line errors for unusable options and input.

The commands are slow to start (MLflow and LightGBM are imported), so each group runs in parallel, once
per module.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")
START, END = "2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z"
PLAN_COLUMNS = [
    "subscriber_id", "channel", "send_at", "expected_engagement", "reason",
    "window_start", "window_end", "holdout", "explored", "propensity",
]  # fmt: skip
ISO = r"\d{4}-\d\d-\d\dT\d\d:00:00Z"


def _run(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(SENDTIME_HOME=str(home), MLFLOW_ENABLE_TELEMETRY="false", DO_NOT_TRACK="true")
    return subprocess.run(
        [str(SENDTIME), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _parallel(cases: dict[str, list[str]], home: Path, cwd: Path) -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        futures = {name: pool.submit(_run, args, home, cwd) for name, args in cases.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def audience(small_world) -> pd.DataFrame:
    """Known people (some rows without their e-mail), new contacts, bad and empty rows, a repeat, own columns."""
    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet")
    rng = np.random.default_rng(1)
    known = people.sample(240, random_state=1)[["email", "phone"]].reset_index(drop=True)
    known["email"] = known["email"].where(rng.random(len(known)) > 0.1)
    odd = pd.DataFrame(
        {
            "email": ["", "not-an-email", "new.one@example.com", "", known["email"].dropna().iloc[0], ""],
            "phone": ["", "555", "", "+13125550177", "", "  "],
        }
    )
    frame = pd.concat([known, odd], ignore_index=True).fillna("")
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    frame.insert(0, "customer_ref", [f"C{i:05d}" for i in range(len(frame))])
    frame["zip"] = [f"{i % 100_000:05d}" for i in rng.integers(0, 3000, len(frame))]  # leading zeros
    frame["segment"] = rng.choice(["vip", "regular", "NA"], len(frame))
    return frame.astype(str)


@pytest.fixture(scope="module")
def runs(trained_champion, session_home, audience, tmp_path_factory):
    root = tmp_path_factory.mktemp("schedule-cli")
    audience.to_csv(root / "audience.csv", index=False)
    audience.to_parquet(root / "audience.parquet", index=False)
    (root / "no_contacts.csv").write_text("name,mail\nana,ana@example.com\n")
    good = ["schedule", "--start", START, "--end", END]
    cases = {
        "csv_to_parquet": [
            *good, "--audience", "audience.csv", "--out", "out/plan.parquet", "--max-sms", "15",
            "--max-per-hour", "email=20", "--max-per-hour", "sms=4", "--holdout", "0.1", "--explore", "0.05",
            "--seed", "3",
        ],
        "parquet_to_csv": [
            *good, "--audience", "audience.parquet", "--out", "plan.csv", "--campaign-time", "2026-11-10T15:30:00Z",
            "--holdout", "0.2",
        ],
    }  # fmt: skip
    done = _parallel(cases, session_home, root)
    errors = {
        "no_offset": ["schedule", "--start", "2026-11-10T12:00:00", "--end", END, "--audience", "audience.csv",
                      "--out", "p.csv"],
        "end_before_start": ["schedule", "--start", END, "--end", START, "--audience", "audience.csv", "--out", "p.csv"],
        "too_long": ["schedule", "--start", START, "--end", "2026-12-01T00:00:00Z", "--audience", "audience.csv",
                     "--out", "p.csv"],
        "missing_audience": [*good, "--audience", "nope.csv", "--out", "p.csv"],
        "unknown_extension": [*good, "--audience", "audience.xlsx", "--out", "p.csv"],
        "unknown_out_extension": [*good, "--audience", "audience.csv", "--out", "plan.json"],
        "no_contact_columns": [*good, "--audience", "no_contacts.csv", "--out", "p.csv"],
    }  # fmt: skip
    done |= _parallel(errors, session_home, root)
    done["no_champion"] = _run(
        [*good, "--audience", "audience.csv", "--out", "p.csv"], root / "empty-home", root
    )
    return root, done


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _check_contract(plan: pd.DataFrame, audience: pd.DataFrame) -> None:
    assert len(plan) == len(audience)
    assert list(plan.columns) == [*audience.columns, *PLAN_COLUMNS]
    pd.testing.assert_frame_equal(plan[audience.columns].astype(str), audience, check_dtype=False)
    sent = plan["channel"].isin(["email", "sms"])
    assert (sent | plan["channel"].isna() | (plan["channel"] == "")).all()
    assert plan.loc[sent, "send_at"].str.fullmatch(ISO).all()
    at = pd.to_datetime(plan.loc[sent, "send_at"], utc=True)
    assert (at >= pd.Timestamp(START)).all() and (at < pd.Timestamp(END)).all()
    assert plan.loc[sent, "expected_engagement"].astype(float).between(0, 1).all()
    assert plan["reason"].astype(str).str.len().gt(0).all()
    empty = (audience["email"].str.strip() == "") & (audience["phone"].str.strip() == "")
    assert (plan.loc[empty, "reason"] == "no contact").all() and not sent[empty].any()
    assert plan.loc[~sent, "reason"].str.len().gt(0).all()


def test_csv_in_parquet_out(runs, audience):
    root, done = runs
    stdout = _ok(done["csv_to_parquet"])
    plan = pd.read_parquet(root / "out" / "plan.parquet")
    _check_contract(plan, audience)
    assert plan["phone"].tolist() == audience["phone"].tolist() and plan["zip"].str.len().eq(5).all()
    sent = plan["channel"].notna()
    assert (plan["channel"] == "sms").sum() <= 15
    per_hour = plan[sent].groupby(["channel", "send_at"]).size()
    assert (
        per_hour.get("email", pd.Series([0])).max() <= 20 and per_hour.get("sms", pd.Series([0])).max() <= 4
    )
    assert plan["holdout"].dtype == bool and plan["explored"].dtype == bool
    assert (
        plan["holdout"].any()
        and plan.loc[plan["holdout"] & sent, "reason"].str.startswith("holdout: campaign time").all()
    )
    assert plan.loc[sent, "propensity"].between(0, 1, inclusive="right").all()
    assert plan.loc[~sent, "send_at"].isna().all()
    for line in ("channels: email", "sms:", "sends per UTC hour", "expected engagement", "lift x", "sms budget",
                 "email cap 20/h", "sms cap 4/h", "holdout", "plot:"):  # fmt: skip
        assert line in stdout, (line, stdout)
    png = root / "out" / "plan.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (root / "out").iterdir()) == ["plan.parquet", "plan.png"]  # no temp files


def test_parquet_in_csv_out(runs, audience):
    root, done = runs
    stdout = _ok(done["parquet_to_csv"])
    plan = pd.read_csv(root / "plan.csv", dtype=str, keep_default_na=False)
    _check_contract(plan, audience)
    assert plan["phone"].tolist() == audience["phone"].tolist()
    assert plan["segment"].tolist() == audience["segment"].tolist()  # "NA" stays "NA"
    held = plan[(plan["holdout"] == "True") & (plan["channel"] == "email")]
    assert len(held) and (held["send_at"] == "2026-11-10T16:00:00Z").all()  # first hour after 15:30
    assert "campaign time 2026-11-10T15:30:00Z" in stdout and "cost of limits" in stdout
    assert (root / "plan.png").exists()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_offset", r"--start '2026-11-10T12:00:00': needs a UTC offset or Z"),
        ("end_before_start", r"--end .* must be after --start"),
        ("too_long", r"at most 14 days"),
        ("missing_audience", r"audience file nope\.csv does not exist"),
        ("unknown_extension", r"audience file audience\.xlsx: unknown extension '\.xlsx'"),
        ("unknown_out_extension", r"--out plan\.json: unknown extension '\.json'"),
        ("no_contact_columns", r"no_contacts\.csv: needs a column 'email' or 'phone'"),
        ("no_champion", r"no champion model .*`sendtime train"),
    ],
)
def test_errors_are_one_clear_line(runs, case, message):
    _, done = runs
    proc = done[case]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("sendtime schedule: error:")]
    assert len(lines) == 1 and re.search(message, lines[0]), proc.stderr[-2000:]
