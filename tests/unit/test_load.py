"""Loading and validating a data folder: tiny hand-made CSV and Parquet files written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.configs.settings import DataSettings
from sendtime.features.load import REJECT_COLUMNS, load_folder
from sendtime.features.tables import DataError, parse_booleans

HEADER = "timestamp,channel,event_type,address"
ANA, BEN = "ana@example.com", "ben@example.com"
PHONE = "+12125550123"


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")


def write_csv(folder: Path, name: str, *lines: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def events_csv(folder: Path, *rows: str, header: str = HEADER) -> Path:
    return write_csv(folder, "events", header, *rows)


def good_rows(n: int, start_hour: int = 0) -> list[str]:
    return [f"2026-03-02T{start_hour:02d}:{i:02d}:00Z,email,send,{ANA}" for i in range(n)]


# --- formats ----------------------------------------------------------------------------------------


def test_csv_loads_with_the_contract_columns_and_types(tmp_path):
    events_csv(tmp_path, f"2026-03-02T09:00:00Z,email,send,{ANA}", f"2026-03-02T10:00:00Z,sms,click,{PHONE}")
    data = load_folder(tmp_path)
    ev = data.events
    assert list(ev.columns) == [
        S.TIMESTAMP, S.CHANNEL, S.EVENT_TYPE, S.ADDRESS, S.MESSAGE_ID, S.MACHINE_OPEN, S.BOUNCE_TYPE,
    ]  # fmt: skip
    assert str(ev[S.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert ev[S.TIMESTAMP].tolist() == [utc("2026-03-02T09:00:00Z"), utc("2026-03-02T10:00:00Z")]
    assert ev[S.CHANNEL].tolist() == ["email", "sms"]
    assert ev[S.EVENT_TYPE].tolist() == ["send", "click"]
    assert ev[S.ADDRESS].tolist() == [ANA, PHONE]
    assert ev[S.MESSAGE_ID].isna().all() and ev[S.MACHINE_OPEN].isna().all()  # optional columns absent
    assert ev[S.BOUNCE_TYPE].isna().all()
    assert data.rejects.empty and data.reject_counts() == {}
    assert data.raw_rows == {"events": 2}
    assert data.subscribers is None and data.links is None


def test_parquet_loads(tmp_path):
    pd.DataFrame(
        {
            "timestamp": ["2026-03-02T09:00:00Z", "2026-03-02T10:00:00+01:00"],
            "channel": ["email", "email"],
            "event_type": ["send", "open"],
            "address": [ANA, ANA],
            "message_id": ["m1", "m1"],
            "machine_open": [None, True],
        }
    ).to_parquet(tmp_path / "events.parquet")
    ev = load_folder(tmp_path).events
    assert ev[S.TIMESTAMP].tolist() == [utc("2026-03-02T09:00:00Z"), utc("2026-03-02T09:00:00Z")]
    assert ev[S.MESSAGE_ID].tolist() == ["m1", "m1"]
    assert ev[S.MACHINE_OPEN].tolist() == [pd.NA, True]


def test_parquet_wins_when_both_exist(tmp_path):
    events_csv(tmp_path, f"2026-03-02T09:00:00Z,email,send,{ANA}")
    pd.DataFrame(
        {
            "timestamp": ["2026-03-02T09:00:00Z"],
            "channel": ["sms"],
            "event_type": ["send"],
            "address": [PHONE],
        }
    ).to_parquet(tmp_path / "events.parquet")
    ev = load_folder(tmp_path).events
    assert ev[S.ADDRESS].tolist() == [PHONE]


def test_extra_columns_are_ignored_and_header_case_does_not_matter(tmp_path):
    events_csv(
        tmp_path,
        f"campaign-1,2026-03-02T09:00:00Z,email,send,{ANA},x",
        header=" Campaign,TIMESTAMP,Channel ,Event_Type,address,notes",
    )
    ev = load_folder(tmp_path).events
    assert list(ev.columns) == [
        S.TIMESTAMP, S.CHANNEL, S.EVENT_TYPE, S.ADDRESS, S.MESSAGE_ID, S.MACHINE_OPEN, S.BOUNCE_TYPE,
    ]  # fmt: skip
    assert len(ev) == 1


def test_channel_and_event_type_case_and_spaces_are_normalised(tmp_path):
    events_csv(
        tmp_path,
        f"2026-03-02T09:00:00Z,EMAIL,Send,{ANA}",
        f"2026-03-02T09:00:00Z, Sms ,CLICK ,{PHONE}",
        f"2026-03-02T09:00:00Z,eMail,UnSubscribe,{ANA}",
    )
    data = load_folder(tmp_path)
    assert data.events[S.CHANNEL].tolist() == ["email", "sms", "email"]
    assert data.events[S.EVENT_TYPE].tolist() == ["send", "click", "unsubscribe"]
    assert data.rejects.empty


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T09:00:00Z", "2026-03-02T09:00:00Z"),
        ("2026-03-02T09:00:00+02:00", "2026-03-02T07:00:00Z"),
        ("2026-03-02T01:30:00-05:00", "2026-03-02T06:30:00Z"),
        ("2026-03-02 09:00:00", "2026-03-02T09:00:00Z"),  # naive means UTC
        ("2022-03-18 15:28:01.000000 UTC", "2022-03-18T15:28:01Z"),
        ("2026-03-02T09:00:00.250Z", "2026-03-02T09:00:00.250Z"),
    ],
)
def test_timestamp_spellings(tmp_path, text, expected):
    events_csv(tmp_path, f"{text},email,send,{ANA}")
    assert load_folder(tmp_path).events[S.TIMESTAMP].tolist() == [utc(expected)]


def test_timestamp_spellings_mixed_in_one_file_each_convert_exactly(tmp_path):
    # a naive value after an offset value must not take that offset over (pandas' ISO-8601 parser does)
    events_csv(
        tmp_path,
        f"2026-03-02T09:00:00+02:00,email,send,{ANA}",
        f"2026-03-02 09:00:00,email,send,{ANA}",
        f"2026-03-02T09:00:00Z,email,send,{ANA}",
        f"2026-03-02T09:00:00-05:00,email,send,{ANA}",
        f"2026-03-02T09:00:00,email,send,{ANA}",
        f"2022-03-18 15:28:01.000000 UTC,email,send,{ANA}",
    )
    ev = load_folder(tmp_path).events
    assert str(ev[S.TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert ev[S.TIMESTAMP].tolist() == [
        utc("2026-03-02T07:00:00Z"),
        utc("2026-03-02T09:00:00Z"),
        utc("2026-03-02T09:00:00Z"),
        utc("2026-03-02T14:00:00Z"),
        utc("2026-03-02T09:00:00Z"),
        utc("2022-03-18T15:28:01Z"),
    ]


def _parquet_events(path: Path, timestamps: pd.Series) -> None:
    n = len(timestamps)
    pd.DataFrame(
        {"timestamp": timestamps, "channel": ["email"] * n, "event_type": ["send"] * n, "address": [ANA] * n}
    ).to_parquet(path)


def test_parquet_tz_aware_datetimes_are_converted_to_utc(tmp_path):
    local = pd.Series(pd.to_datetime(["2026-03-02 09:00", "2026-07-02 09:00"]).tz_localize("Europe/Brussels"))
    _parquet_events(tmp_path / "events.parquet", local)
    ev = load_folder(tmp_path).events
    assert ev[S.TIMESTAMP].tolist() == [utc("2026-03-02T08:00:00Z"), utc("2026-07-02T07:00:00Z")]  # CET, CEST
    assert str(ev[S.TIMESTAMP].dt.tz) == "UTC"


def test_parquet_naive_datetimes_mean_utc(tmp_path):
    _parquet_events(tmp_path / "events.parquet", pd.Series(pd.to_datetime(["2026-03-02 09:00"])))
    ev = load_folder(tmp_path).events
    assert ev[S.TIMESTAMP].tolist() == [utc("2026-03-02T09:00:00Z")]


def test_message_id_is_stripped_and_blank_is_missing(tmp_path):
    events_csv(
        tmp_path,
        f"2026-03-02T09:00:00Z,email,send,{ANA}, m1 ",
        f"2026-03-02T09:00:00Z,email,send,{ANA},",
        f"2026-03-02T09:00:00Z,email,send,{ANA},   ",
        header=HEADER + ",message_id",
    )
    ids = load_folder(tmp_path).events[S.MESSAGE_ID]
    assert [v if pd.notna(v) else None for v in ids.tolist()] == ["m1", None, None]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["m1", "m2", "m1", None], ["m1", "m2", "m1", None]),  # clean: kept as read
        ([" m1 ", "m2", "", "   "], ["m1", "m2", None, None]),  # messy: stripped, blank is missing
    ],
)
def test_parquet_message_ids_are_cleaned_the_same_way(tmp_path, given, expected):
    n = len(given)
    pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2026-03-02 09:00"] * n),
            "channel": ["email"] * n,
            "event_type": ["send"] * n,
            "address": [ANA] * n,
            "message_id": given,
        }
    ).to_parquet(tmp_path / "events.parquet")
    ids = load_folder(tmp_path).events[S.MESSAGE_ID]
    assert isinstance(ids.dtype, pd.CategoricalDtype)
    assert [v if pd.notna(v) else None for v in ids.tolist()] == expected


# --- whole-file failures ----------------------------------------------------------------------------


def test_missing_required_column_names_the_file_and_the_column(tmp_path):
    path = write_csv(tmp_path, "events", "timestamp,channel,address", f"2026-03-02T09:00:00Z,email,{ANA}")
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert str(path) in str(err.value)
    assert "'event_type'" in str(err.value)
    assert "'timestamp'" not in str(err.value)


def test_header_only_events_file_fails_clearly(tmp_path):
    path = events_csv(tmp_path)
    with pytest.raises(DataError, match="no rows") as err:
        load_folder(tmp_path)
    assert str(path) in str(err.value)


def test_empty_file_without_a_header_fails_clearly(tmp_path):
    (tmp_path / "events.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_folder(tmp_path)


def test_data_without_a_header_row_fails_naming_the_missing_columns(tmp_path):
    (tmp_path / "events.csv").write_text("\n".join(good_rows(3)) + "\n")
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    message = str(err.value)
    assert "events.csv" in message and "'timestamp'" in message and "no header row" in message


def test_missing_events_file_names_the_folder(tmp_path):
    write_csv(tmp_path, "subscribers", "address,channel", f"{ANA},email")
    with pytest.raises(DataError, match="no events table") as err:
        load_folder(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(DataError, match="not a folder") as err:
        load_folder(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)  # the CLI turns both into a one-line error, exit code 2


# --- rejected rows ----------------------------------------------------------------------------------

BAD_ROWS = [
    (f"yesterday-ish,email,send,{ANA}", S.TIMESTAMP, "unparseable timestamp"),
    (f"2026-03-02T09:00:00Z,fax,send,{ANA}", S.CHANNEL, "unknown channel"),
    (f"2026-03-02T09:00:00Z,email,forward,{ANA}", S.EVENT_TYPE, "unknown event type"),
    ("2026-03-02T09:00:00Z,email,send,", S.ADDRESS, "empty address"),
    ("2026-03-02T09:00:00Z,email,send,   ", S.ADDRESS, "empty address"),
    (f"2026-03-02T09:00:00Z,sms,open,{PHONE}", S.EVENT_TYPE, "open on sms (SMS has no opens)"),
]


@pytest.mark.parametrize(
    ("row", "field", "reason"), BAD_ROWS, ids=[r[2] + str(i) for i, r in enumerate(BAD_ROWS)]
)
def test_each_unusable_row_is_counted_with_its_row_field_and_reason(tmp_path, row, field, reason):
    events_csv(tmp_path, *good_rows(4), row, *good_rows(5, start_hour=10))
    data = load_folder(tmp_path)
    assert len(data.events) == 9
    assert data.reject_counts() == {f"events: {reason}": 1}
    assert data.rejects.to_dict("records") == [
        {"table": "events", "file": "events.csv", "row": 5, "field": field, "reason": reason}
    ]


def test_a_row_with_several_problems_is_counted_once_by_the_first(tmp_path):
    events_csv(tmp_path, *good_rows(9), "not-a-time,fax,forward,")
    data = load_folder(tmp_path)
    assert data.reject_counts() == {"events: unparseable timestamp": 1}


def test_rejects_are_written_with_their_reasons(tmp_path):
    data_dir = tmp_path / "data"
    events_csv(data_dir, *good_rows(30), *(row for row, _, _ in BAD_ROWS))  # 6 of 36 bad: under 20%
    data = load_folder(data_dir)
    assert data.reject_counts() == {
        "events: empty address": 2,
        "events: unparseable timestamp": 1,
        "events: unknown channel": 1,
        "events: unknown event type": 1,
        "events: open on sms (SMS has no opens)": 1,
    }
    out = data.write_rejects(tmp_path / "out" / "rejects.csv")
    written = pd.read_csv(out)
    assert list(written.columns) == REJECT_COLUMNS
    assert sorted(written["row"].tolist()) == list(range(31, 37))  # 1-based data rows
    assert set(written["reason"]) == {reason for _, _, reason in BAD_ROWS}
    assert "rejected events: empty address: 2" in data.summary()


def test_job_fails_when_the_bad_share_passes_the_limit(tmp_path):
    events_csv(
        tmp_path, *good_rows(7), *[f"garbage,email,send,{ANA}"] * 2, f"2026-03-02T09:00:00Z,fax,send,{ANA}"
    )
    with pytest.raises(DataError) as err:  # 3 of 10 bad: 30% > 20%
        load_folder(tmp_path)
    message = str(err.value)
    assert "events.csv" in message and "3 of 10" in message and "bad_share_limit" in message
    assert "events: unparseable timestamp: 2" in message and "events: unknown channel: 1" in message


def test_job_passes_at_or_below_the_limit(tmp_path):
    events_csv(tmp_path, *good_rows(8), *[f"garbage,email,send,{ANA}"] * 2)  # 2 of 10: exactly 20%
    assert len(load_folder(tmp_path).events) == 8
    assert len(load_folder(tmp_path, DataSettings(bad_share_limit=0.5)).events) == 8
    with pytest.raises(DataError, match="cannot be used"):
        load_folder(tmp_path, DataSettings(bad_share_limit=0.1))


def test_all_rows_bad_with_no_limit_still_fails_clearly(tmp_path):
    events_csv(tmp_path, f"garbage,email,send,{ANA}")
    with pytest.raises(DataError, match="no usable event rows"):
        load_folder(tmp_path, DataSettings(bad_share_limit=1.0))


# --- machine_open -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("Y", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("N", False),
        ("", pd.NA),  # empty: the platform said nothing
        ("maybe", pd.NA),
    ],
)
def test_machine_open_parsing_from_csv(tmp_path, text, expected):
    events_csv(tmp_path, f"2026-03-02T09:00:00Z,email,open,{ANA},{text}", header=HEADER + ",machine_open")
    value = load_folder(tmp_path).events[S.MACHINE_OPEN].iloc[0]
    assert (value is pd.NA) if expected is pd.NA else (value == expected)


def test_bounce_type_is_hard_or_soft_in_any_case_and_anything_else_is_unknown_not_rejected(tmp_path):
    kinds = [" HARD", "Soft", "hard ", "", "permanent", "soft"]
    events_csv(
        tmp_path,
        *[f"2026-03-02T09:0{i}:00Z,email,bounce,{ANA},{k}" for i, k in enumerate(kinds)],
        header=HEADER + ",Bounce_Type",
    )
    data = load_folder(tmp_path)
    assert data.rejects.empty
    assert [None if pd.isna(v) else v for v in data.events[S.BOUNCE_TYPE]] == [
        "hard", "soft", "hard", None, None, "soft",
    ]  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_empty_bounce_type_column_loads_as_unknown(tmp_path, suffix):
    frame = pd.DataFrame(
        {
            "timestamp": ["2026-03-02T09:00:00Z"] * 2,
            "channel": "email",
            "event_type": "bounce",
            "address": ANA,
            "bounce_type": [None, None],
        }  # fmt: skip
    )
    if suffix == ".csv":
        frame.to_csv(tmp_path / "events.csv", index=False)
    else:
        frame.astype({"bounce_type": "string"}).to_parquet(tmp_path / "events.parquet", index=False)
    events = load_folder(tmp_path).events
    assert len(events) == 2 and events[S.BOUNCE_TYPE].isna().all()


def test_a_column_of_nothing_but_blanks_is_rejected_row_by_row_not_a_crash(tmp_path):
    events_csv(tmp_path, *[f"2026-03-02T09:0{i}:00Z,,send,{ANA}" for i in range(3)])
    with pytest.raises(DataError, match="unknown channel: 3"):
        load_folder(tmp_path)


def test_machine_open_from_typed_parquet_columns():
    assert parse_booleans(pd.Series([True, False, None], dtype=object)).tolist() == [True, False, pd.NA]
    assert parse_booleans(pd.Series([True, False])).tolist() == [True, False]
    # an integer column with nulls comes back from Parquet as floats
    assert parse_booleans(pd.Series([1.0, 0.0, np.nan])).tolist() == [True, False, pd.NA]
    assert parse_booleans(pd.Series([1, 0], dtype="int64")).tolist() == [True, False]


# --- subscribers and identity_links -----------------------------------------------------------------


def test_subscribers_table_loads_with_empty_timezone_as_missing(tmp_path):
    events_csv(tmp_path, *good_rows(1))
    write_csv(
        tmp_path,
        "subscribers",
        "address,channel,timezone,subscribed_at,extra",
        f"{ANA},email,Europe/Brussels,2025-01-01T10:00:00+01:00,x",
        f"{PHONE},SMS,,2025-01-02 10:00:00,y",
        f"{BEN},email,  ,,z",
    )
    data = load_folder(tmp_path)
    subs = data.subscribers
    assert subs[S.ADDRESS].tolist() == [ANA, PHONE, BEN]
    assert subs[S.CHANNEL].tolist() == ["email", "sms", "email"]
    assert subs[S.TIMEZONE].iloc[0] == "Europe/Brussels"
    assert subs[S.TIMEZONE].iloc[1:].isna().all()
    assert subs[S.SUBSCRIBED_AT].iloc[:2].tolist() == [
        utc("2025-01-01T09:00:00Z"),
        utc("2025-01-02T10:00:00Z"),
    ]
    assert pd.isna(subs[S.SUBSCRIBED_AT].iloc[2])
    assert data.raw_rows == {"events": 1, "subscribers": 3}


def test_subscribers_without_timezone_column(tmp_path):
    events_csv(tmp_path, *good_rows(1))
    write_csv(tmp_path, "subscribers", "address,channel", f"{ANA},email")
    assert load_folder(tmp_path).subscribers[S.TIMEZONE].isna().all()


def test_subscribers_rows_with_empty_address_or_unknown_channel_are_rejected_and_counted(tmp_path):
    events_csv(tmp_path, *good_rows(1))
    write_csv(
        tmp_path, "subscribers", "address,channel", f"{ANA},email", ",email", f"{BEN},pager", f"{PHONE},sms"
    )
    data = load_folder(tmp_path)
    assert data.subscribers[S.ADDRESS].tolist() == [ANA, PHONE]
    assert data.reject_counts() == {"subscribers: empty address": 1, "subscribers: unknown channel": 1}
    rows = data.rejects.sort_values("row")[["file", "row", "field"]].values.tolist()
    assert rows == [["subscribers.csv", 2, S.ADDRESS], ["subscribers.csv", 3, S.CHANNEL]]


def test_subscribers_missing_column_names_the_file_and_column(tmp_path):
    events_csv(tmp_path, *good_rows(1))
    path = write_csv(tmp_path, "subscribers", "address,timezone", f"{ANA},UTC")
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert str(path) in str(err.value) and "'channel'" in str(err.value)


def test_identity_links_load_and_reject_empty_addresses(tmp_path):
    events_csv(tmp_path, *good_rows(1))
    write_csv(
        tmp_path,
        "identity_links",
        "address_a,address_b,observed_at",
        f"{ANA},{PHONE},2025-05-01T12:00:00+02:00",
        f",{PHONE},2025-05-01T12:00:00Z",
        f"{BEN},,",
        f"{BEN},{PHONE},",
    )
    data = load_folder(tmp_path)
    links = data.links
    assert links[[S.ADDRESS_A, S.ADDRESS_B]].values.tolist() == [[ANA, PHONE], [BEN, PHONE]]
    assert links[S.OBSERVED_AT].iloc[0] == utc("2025-05-01T10:00:00Z")
    assert pd.isna(links[S.OBSERVED_AT].iloc[1])
    assert data.reject_counts() == {"identity_links: empty address": 2}
    assert sorted(data.rejects["row"].tolist()) == [2, 3]


def test_identity_links_without_observed_at(tmp_path):
    events_csv(tmp_path, *good_rows(1))
    write_csv(tmp_path, "identity_links", "address_a,address_b", f"{ANA},{PHONE}")
    links = load_folder(tmp_path).links
    assert links[S.OBSERVED_AT].isna().all()


def test_identity_links_missing_column_names_the_file_and_column(tmp_path):
    events_csv(tmp_path, *good_rows(1))
    path = write_csv(tmp_path, "identity_links", "address_a,observed_at", f"{ANA},2025-05-01")
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert str(path) in str(err.value) and "'address_b'" in str(err.value)


def test_rejects_in_optional_tables_do_not_count_toward_the_events_limit(tmp_path):
    events_csv(tmp_path, *good_rows(2))
    write_csv(tmp_path, "subscribers", "address,channel", ",email", ",email", ",email")
    data = load_folder(tmp_path)
    assert len(data.events) == 2
    assert data.reject_counts() == {"subscribers: empty address": 3}
