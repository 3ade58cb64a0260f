"""Nothing lost without a word (issue 11, point 5): unusable addresses, rows past the export's end and
rows that are not UTF-8 are rejects with their own reason and row number; nested Parquet columns and
out-of-range values fail with one clear message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sendtime import schema as S
from sendtime.cli import main
from sendtime.configs.settings import load_settings
from sendtime.features.load import AFTER_END_REASON, DataError, after_export_end, load_folder
from sendtime.features.prepare import build_feature_base
from sendtime.features.unusable import EMAIL_REASON, PHONE_REASON, add_address_rejects

HEADER = b"timestamp,channel,event_type,address"


def _write(folder: Path, name: str, rows: list[bytes], header: bytes = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"\n".join([header, *rows]) + b"\n")
    return path


def _good(i: int, day: int = 2) -> bytes:
    return f"2026-03-{day:02d}T09:{i % 60:02d}:00Z,email,send,p{i}@example.com".encode()


def _rejects_of(data, reason: str) -> pd.DataFrame:
    return data.rejects[data.rejects["reason"] == reason]


# --- unusable addresses -----------------------------------------------------------------------------


def _with_bad_addresses(folder: Path, n_good: int, bad: dict[int, bytes]) -> Path:
    """`n_good` good rows with the `bad` rows inserted at their 0-based positions; row 2 has no timestamp."""
    rows = [_good(i) for i in range(n_good)]
    rows[1] = b"not a time,email,send,p1@example.com"
    for at, row in sorted(bad.items()):
        rows.insert(at, row)
    return _write(folder, "events.csv", rows)


@pytest.mark.parametrize(
    ("address", "channel", "reason"),
    [
        ("ana.example.com", "email", EMAIL_REASON),  # no '@'
        ("@example.com", "email", EMAIL_REASON),  # empty local part
        ("ana@", "email", EMAIL_REASON),  # empty domain
        ("ana maria@example.com", "email", EMAIL_REASON),  # a space
        ("ana@example", "email", EMAIL_REASON),  # no dot in the domain
        ("ana@example..com", "email", EMAIL_REASON),  # an empty label
        ("12", "sms", PHONE_REASON),
        ("+1 212 555 01", "sms", PHONE_REASON),  # too short to be a number
        ("call me", "sms", PHONE_REASON),
    ],
)
def test_an_unusable_address_is_a_reject_with_its_file_row_and_reason(tmp_path, address, channel, reason):
    bad = f"2026-03-02T10:00:00Z,{channel},send,{address}".encode()
    _with_bad_addresses(tmp_path, 40, {5: bad})  # file row 6; row 2 was rejected by the load
    settings = load_settings()
    data = load_folder(tmp_path, settings.data)
    add_address_rejects(data, build_feature_base(data, settings).rejects, settings)
    mine = data.rejects[data.rejects["field"] == S.ADDRESS]
    assert mine[["table", "file", "row", "reason"]].values.tolist() == [["events", "events.csv", 6, reason]]
    assert data.reject_counts() == {"events: unparseable timestamp": 1, f"events: {reason}": 1}
    assert f"rejected events: {reason}: 1" in data.summary()
    out = data.write_rejects(tmp_path / "out" / "rejects.csv")
    assert pd.read_csv(out)["row"].tolist() == [2, 6]


def test_unusable_addresses_count_toward_the_bad_share_limit(tmp_path):
    bad = {i: f"2026-03-02T10:00:00Z,email,send,person{i}-at-example.com".encode() for i in range(0, 60, 2)}
    _with_bad_addresses(tmp_path, 70, bad)  # 30 of 100 rows are no e-mail address
    settings = load_settings()
    data = load_folder(tmp_path, settings.data)  # each row alone looks fine to the load
    with pytest.raises(DataError, match=r"31 of 100 rows \(31\.0%\).*invalid e-mail address: 30"):
        add_address_rejects(data, build_feature_base(data, settings).rejects, settings)


def test_subscribers_and_links_with_unusable_addresses_are_rejects(tmp_path):
    _write(tmp_path, "events.csv", [_good(i) for i in range(10)])
    _write(
        tmp_path,
        "subscribers.csv",
        [b"p1@example.com,email", b"no-at-sign,email", b"+12125550123,sms", b"555,sms"],
        header=b"address,channel",
    )
    _write(
        tmp_path,
        "identity_links.csv",
        [b"p1@example.com,+12125550123", b"p2@example.com,12", b"bad@@x.com,p3@example.com"],
        header=b"address_a,address_b",
    )
    settings = load_settings()
    data = load_folder(tmp_path, settings.data)
    add_address_rejects(data, build_feature_base(data, settings).rejects, settings)
    got = data.rejects[["table", "row", "reason"]].values.tolist()
    assert got == [
        ["subscribers", 2, EMAIL_REASON],
        ["subscribers", 4, PHONE_REASON],
        ["identity_links", 2, PHONE_REASON],
        ["identity_links", 3, EMAIL_REASON],
    ]


# --- rows past the export's end ----------------------------------------------------------------------


def test_a_row_dated_years_ahead_is_rejected_with_its_own_reason(tmp_path):
    rows = [_good(i, day=1 + i % 28) for i in range(200)]
    rows.insert(120, b"2031-03-02T09:00:00Z,email,send,p1@example.com")
    _write(tmp_path, "events.csv", rows)
    data = load_folder(tmp_path)
    assert _rejects_of(data, AFTER_END_REASON)[["row", "field"]].values.tolist() == [[121, "timestamp"]]
    assert len(data.events) == 200 and data.events[S.TIMESTAMP].max() < pd.Timestamp("2026-04-01", tz="UTC")


def test_the_export_end_rule_keeps_ordinary_exports_whole():
    def ts(days: list[float]) -> pd.Series:
        return pd.Series(pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(days, unit="D"))

    steady = list(np.linspace(0, 60, 1000))
    assert not after_export_end(ts(steady), 7, 0.01).any()
    # a real pause in the middle: what follows is far more than a stray tail
    assert not after_export_end(ts(steady[:500] + [d + 20 for d in steady[500:]]), 7, 0.01).any()
    # a few rows a week beyond: rejected; the same rows 5 days beyond: kept
    assert after_export_end(ts(steady + [68.5, 69]), 7, 0.01).sum() == 2
    assert not after_export_end(ts(steady + [65.5]), 7, 0.01).any()
    assert not after_export_end(ts([]), 7, 0.01).any() and not after_export_end(ts([3.0]), 7, 0.01).any()


# --- text that is not UTF-8 ----------------------------------------------------------------------------


def test_rows_that_are_not_utf8_are_rejected_one_by_one(tmp_path):
    rows = [_good(i) for i in range(30)]
    rows[3] = b"2026-03-02T09:03:00Z,email,send,b\xe9atrice@example.com"  # Latin-1
    rows[17] = b"2026-03-02T09:17:00Z,em\xffail,send,p17@example.com"
    _write(tmp_path, "events.csv", rows)
    _write(
        tmp_path,
        "subscribers.csv",
        [b"p1@example.com,email", b"j\xf6rg@example.com,email"],
        b"address,channel",
    )
    data = load_folder(tmp_path)
    got = data.rejects[["table", "row", "reason"]].values.tolist()
    assert got == [
        ["events", 4, "not UTF-8 text"],
        ["events", 18, "not UTF-8 text"],
        ["subscribers", 2, "not UTF-8 text"],
    ]
    assert len(data.events) == 28 and data.subscribers[S.ADDRESS].tolist() == ["p1@example.com"]
    assert "__sendtime_undecodable__" not in data.events.columns


def test_a_header_that_is_not_utf8_fails_clearly(tmp_path):
    _write(tmp_path, "events.csv", [_good(1)], header=b"timestamp,channel,event_type,addr\xe9ss")
    with pytest.raises(DataError, match="header row is not UTF-8"):
        load_folder(tmp_path)


# --- Parquet: nested columns, timestamps beyond the nanosecond range ------------------------------------


def _parquet(folder: Path, **columns) -> None:
    base = {
        "timestamp": ["2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"],
        "channel": ["email", "email"],
        "event_type": ["send", "send"],
        "address": ["a@example.com", "b@example.com"],
    }
    pq.write_table(pa.table({**base, **columns}), folder / "events.parquet")


def test_a_nested_contract_column_fails_with_a_clear_message(tmp_path):
    _parquet(tmp_path, address=pa.array([["a@example.com"], ["b@example.com"]]))
    with pytest.raises(DataError, match=r"events\.parquet: column 'address' holds nested values \(list"):
        load_folder(tmp_path)


def test_a_nested_extra_column_is_ignored(tmp_path):
    _parquet(tmp_path, tags=pa.array([{"k": 1}, {"k": 2}]))
    assert len(load_folder(tmp_path).events) == 2


def test_parquet_timestamps_beyond_the_nanosecond_range_are_rejected_rows(tmp_path):
    stamps = [dt.datetime(2026, 3, 2, 9 + i % 10) for i in range(19)] + [dt.datetime(3000, 1, 1)]
    pq.write_table(
        pa.table(
            {
                "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                "channel": ["email"] * 20,
                "event_type": ["send"] * 20,
                "address": [f"p{i}@example.com" for i in range(20)],
            }
        ),
        tmp_path / "events.parquet",
    )
    data = load_folder(tmp_path)
    assert data.rejects[["row", "reason"]].values.tolist() == [[20, "unparseable timestamp"]]
    assert len(data.events) == 19


# --- option values out of range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--out", "x", "--subscribers", "99999999999999999999"], "--subscribers: 99999999999999999999 is out of range"),
        (["simulate", "--out", "x", "--days", "10000000000"], "--days: 10000000000 is out of range"),
        (["simulate", "--out", "x", "--seed", "-1"], "--seed: -1 is out of range"),
        (["simulate", "--out", "x", "--days", "1e3"], "--days: '1e3' is not a whole number"),
        (["serve", "--port", "70000"], "--port: 70000 is out of range"),
        (["tune", "--data", "x", "--trials", "0"], "--trials: 0 is out of range"),
        (
            ["schedule", "--audience", "a.csv", "--start", "2026-11-03T00:00:00Z", "--end", "2026-11-04T00:00:00Z",
             "--out", "p.csv", "--max-sms", "1" + "0" * 30],
            "--max-sms: 1000000000000000000000000000000 is out of range",
        ),
    ],
)  # fmt: skip
def test_overflowing_option_values_are_one_clear_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("start", "end"),
    [("2300-01-01T00:00:00Z", "2300-01-02T00:00:00Z"), ("1500-01-01T00:00:00Z", "1500-01-02T00:00:00Z")],
)
def test_window_times_out_of_range_are_one_clear_line(tmp_path, start, end, capsys):
    audience = tmp_path / "a.csv"
    audience.write_text("email,phone\na@example.com,\n")
    argv = [
        "schedule",
        "--audience",
        str(audience),
        "--start",
        start,
        "--end",
        end,
        "--out",
        str(tmp_path / "p.csv"),
    ]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "out of the supported range" in err and "Traceback" not in err


# --- the built-in salt --------------------------------------------------------------------------------


def test_the_built_in_salt_warns_on_real_data_only(tmp_path, monkeypatch):
    from sendtime.features.identity import default_salt_warning

    monkeypatch.delenv("SENDTIME_SALT", raising=False)
    real = tmp_path / "real"
    _write(real, "events.csv", [_good(1)])
    warning = default_salt_warning(load_settings(), real)
    assert warning is not None and "built-in default salt" in warning and "export SENDTIME_SALT=" in warning

    simulated = tmp_path / "simulated"
    _write(simulated, "events.csv", [_good(1)])
    (simulated / S.GROUND_TRUTH_DIR).mkdir()
    (simulated / S.GROUND_TRUTH_DIR / "meta.json").write_text("{}")
    assert default_salt_warning(load_settings(), simulated) is None  # `make demo`: made-up addresses

    assert default_salt_warning(load_settings(overrides={"data": {"salt": "from-a-file"}}), real) is None
    monkeypatch.setenv("SENDTIME_SALT", "a-real-secret")
    assert default_salt_warning(load_settings(), real) is None
