"""Read a plan written by `sendtime schedule` and join it with the events that followed.

A planned row is *sent* when the export holds a send on the row's channel to the row's address (normalised
as training normalises addresses) at or after `send_at` and within `match_hours` of it: sending systems
throttle and queue, so a send lands a little after its planned instant. Rows never sent are counted
apart, never as failures. A sent row's outcome is what followed within 24 hours of the actual send: when
the send carries a `message_id`, only engagements with that id count (the export may overlap other
campaigns and journeys); without ids, any engagement on that address in those 24 hours counts. A row whose
24 hours run past the end of the export is *censored*: counted, but not in any rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.features.identity import normalise_addresses
from sendtime.features.load import DataError

# the plan's own columns beyond the schema's (named in `sendtime schedule`'s output contract)
HOLDOUT, EXPLORED, PROPENSITY, MODEL_VERSION = "holdout", "explored", "propensity", "model_version"
PLAN_REQUIRED = (
    S.SUBSCRIBER_ID,
    S.PLAN_CHANNEL,
    S.SEND_AT,
    S.EXPECTED_ENGAGEMENT,
    HOLDOUT,
    EXPLORED,
    PROPENSITY,
)
OPTIMISED, HOLDOUT_ARM, EXPLORED_ARM = "optimised", "holdout", "explored"
ARMS = (OPTIMISED, HOLDOUT_ARM, EXPLORED_ARM)
HORIZON = pd.Timedelta(hours=24)
_TRUE = {"true", "t", "1", "yes", "y", "1.0"}
_FALSE = {"false", "f", "0", "no", "n", "", "0.0", "nan", "none", "<na>"}


def read_plan(path: str | Path) -> pd.DataFrame:
    """The plan table with typed columns and an `arm`; errors name the file and the column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--plan {path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif suffix == ".parquet":
        raw = pd.read_parquet(path)
    else:
        raise ValueError(f"--plan {path}: expected a .csv or .parquet plan written by `sendtime schedule`")
    missing = [c for c in PLAN_REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; is this a plan written by `sendtime schedule`?"
        )
    if S.AUDIENCE_EMAIL not in raw.columns and S.AUDIENCE_PHONE not in raw.columns:
        raise DataError(f"{path}: no {S.AUDIENCE_EMAIL} or {S.AUDIENCE_PHONE} column to find the sends by")
    plan = raw.reset_index(drop=True).copy()
    channel = plan[S.PLAN_CHANNEL].astype("string").str.strip().str.lower().fillna("")
    bad = ~channel.isin([*S.CHANNELS, ""])
    _fail(path, S.PLAN_CHANNEL, bad, plan[S.PLAN_CHANNEL], "not email, sms or empty")
    plan[S.PLAN_CHANNEL] = channel
    text = plan[S.SEND_AT].astype("string").str.strip().replace("", pd.NA)
    send_at = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    _fail(path, S.SEND_AT, text.notna() & send_at.isna(), plan[S.SEND_AT], "not an ISO-8601 time")
    plan[S.SEND_AT] = send_at
    for column in (S.EXPECTED_ENGAGEMENT, PROPENSITY):
        values = pd.to_numeric(plan[column].replace("", np.nan), errors="coerce")
        _fail(path, column, values.isna() & _filled(plan[column]), plan[column], "not a number")
        plan[column] = values.astype(float)
    for column in (HOLDOUT, EXPLORED):
        plan[column] = _booleans(plan[column], path, column)
    for column in (S.AUDIENCE_EMAIL, S.AUDIENCE_PHONE):
        if column not in plan.columns:
            plan[column] = ""
    planned = (channel != "") & plan[S.SEND_AT].notna()
    _fail(path, S.SEND_AT, (channel != "") & ~planned, channel, "empty on a row with a channel")
    plan["planned"] = planned.to_numpy()
    plan["arm"] = np.where(plan[HOLDOUT], HOLDOUT_ARM, np.where(plan[EXPLORED], EXPLORED_ARM, OPTIMISED))
    return plan


def _filled(values: pd.Series) -> pd.Series:
    return values.notna() & (values.astype("string").str.strip() != "")


def _fail(path: Path, column: str, bad: pd.Series, values: pd.Series, problem: str) -> None:
    bad = np.asarray(bad, dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {column}: {int(bad.sum()):,} row(s) {problem} (first: row {first + 2} of the "
            f"file, {values.iloc[first]!r})"
        )


def _booleans(values: pd.Series, path: Path, column: str) -> pd.Series:
    if values.dtype == bool:
        return values
    text = values.astype("string").str.strip().str.lower().fillna("")
    _fail(path, column, ~text.isin(_TRUE | _FALSE), values, "not true or false")
    return text.isin(_TRUE)


def plan_addresses(plan: pd.DataFrame, default_region: str) -> pd.Series:
    """`channel:address` of each planned row, normalised like the events' (NA where unusable)."""
    email = plan[S.PLAN_CHANNEL] == S.EMAIL
    raw = plan[S.AUDIENCE_PHONE].where(~email, plan[S.AUDIENCE_EMAIL]).astype("string")
    normal = normalise_addresses(raw, plan[S.PLAN_CHANNEL].where(plan["planned"], ""), default_region)
    return (plan[S.PLAN_CHANNEL] + ":" + normal).astype("string")


def event_keys(events: pd.DataFrame, default_region: str) -> pd.Series:
    normal = normalise_addresses(events[S.ADDRESS], events[S.CHANNEL].astype(str), default_region)
    return (events[S.CHANNEL].astype(str) + ":" + normal).astype("string")


def match_sends(rows: pd.DataFrame, sends: pd.DataFrame, match: pd.Timedelta) -> tuple[pd.Series, pd.Series]:
    """For each row (`key`, `send_at`): the first send (`key`, `timestamp`, `message_id`) at or after
    send_at within `match`; (send time, message id), NaT / NA where none."""
    left = rows[["key", S.SEND_AT]].reset_index().dropna(subset=["key"]).sort_values(S.SEND_AT)
    right = sends[["key", S.TIMESTAMP, S.MESSAGE_ID]].dropna(subset=["key"]).sort_values(S.TIMESTAMP)
    left["key"], right["key"] = left["key"].astype(str), right["key"].astype(str)
    left[S.SEND_AT] = left[S.SEND_AT].astype("datetime64[ns, UTC]")
    right[S.TIMESTAMP] = right[S.TIMESTAMP].astype("datetime64[ns, UTC]")
    joined = pd.merge_asof(
        left,
        right,
        left_on=S.SEND_AT,
        right_on=S.TIMESTAMP,
        by="key",
        direction="forward",
        tolerance=match,
        allow_exact_matches=True,
    ).set_index("index")
    sent_at = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    message = pd.Series(pd.NA, index=rows.index, dtype="string")
    sent_at.loc[joined.index] = joined[S.TIMESTAMP]
    message.loc[joined.index] = joined[S.MESSAGE_ID].astype("string")
    return sent_at, message


def outcomes(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per sent row (`key`, `sent_at`, `message_id`): clicked / opened / converted within 24 h of the send.
    Opens flagged `machine_open` do not count; an SMS has no opens (NaN)."""
    out = pd.DataFrame(index=rows.index, data={"clicked": False, "opened": False, "converted": False})
    sent = rows[rows["sent_at"].notna()]
    if sent.empty:
        return out
    lo, hi = sent["sent_at"].min(), sent["sent_at"].max() + HORIZON
    kinds = {S.CLICK: "clicked", S.OPEN: "opened", S.CONVERSION: "converted"}
    eng = events[events[S.EVENT_TYPE].isin(list(kinds)) & events[S.TIMESTAMP].between(lo, hi)]
    if S.MACHINE_OPEN in eng.columns:
        eng = eng[~((eng[S.EVENT_TYPE] == S.OPEN) & eng[S.MACHINE_OPEN].fillna(False).astype(bool))]
    eng = eng[["key", S.TIMESTAMP, S.EVENT_TYPE, S.MESSAGE_ID]].dropna(subset=["key"])
    left = sent[["key", "sent_at", "message_id"]].reset_index()
    left["key"] = left["key"].astype(str)
    pairs = left.merge(eng.assign(key=eng["key"].astype(str)), on="key", suffixes=("", "_event"))
    delay = pairs[S.TIMESTAMP] - pairs["sent_at"]
    same = pairs["message_id"].isna() | (pairs["message_id"] == pairs[f"{S.MESSAGE_ID}_event"]).fillna(False)
    pairs = pairs[(delay >= pd.Timedelta(0)) & (delay <= HORIZON) & same.astype(bool)]
    for kind, column in kinds.items():
        hit = pairs.loc[pairs[S.EVENT_TYPE] == kind, "index"].unique()
        out.loc[hit, column] = True
    out["opened"] = out["opened"].astype(float).where(rows[S.PLAN_CHANNEL] == S.EMAIL)
    return out


def join(
    plan: pd.DataFrame,
    events: pd.DataFrame,
    default_region: str,
    match_hours: float = 1.0,
    export_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The plan with `sent_at`, `message_id`, `sent`, `censored`, `measured` and the outcomes; `events`
    must carry `key` (`event_keys`). `export_end`: when the export was taken (default: its last event)."""
    rows = plan.copy()
    rows["key"] = plan_addresses(rows, default_region).where(rows["planned"])
    sends = events[events[S.EVENT_TYPE] == S.SEND]
    rows["sent_at"], rows["message_id"] = match_sends(rows, sends, pd.Timedelta(hours=match_hours))
    rows["sent"] = rows["sent_at"].notna()
    export_end = events[S.TIMESTAMP].max() if export_end is None else export_end
    rows["censored"] = rows["sent"] & (rows["sent_at"] + HORIZON > export_end)
    rows["measured"] = rows["sent"] & ~rows["censored"]
    result = outcomes(rows, events)
    for column in result.columns:
        rows[column] = result[column]
    return rows


def history_hour_rates(
    events: pd.DataFrame, before: pd.Timestamp, min_sends: int = 30, lookback_days: int = 28
) -> pd.DataFrame:
    """E-mail sends in the `lookback_days` before the plan, by UTC hour of day: sends and the rate of a
    click within 24 h (events with `key` set). What a campaign tool without profiles knows: the
    population's best clock hour."""
    keyed = events[events["key"].notna() & (events[S.TIMESTAMP] >= before - pd.Timedelta(days=lookback_days))]
    sends = keyed[(keyed[S.EVENT_TYPE] == S.SEND) & (keyed[S.CHANNEL] == S.EMAIL)]
    sends = sends[sends[S.TIMESTAMP] + HORIZON <= before]
    if sends.empty:
        return pd.DataFrame(columns=["sends", "rate"])
    rows = pd.DataFrame(
        {
            "key": sends["key"].to_numpy(),
            "sent_at": sends[S.TIMESTAMP].to_numpy(),
            "message_id": sends[S.MESSAGE_ID].astype("string").to_numpy(),
            S.PLAN_CHANNEL: S.EMAIL,
        }
    )
    rows["sent_at"] = pd.to_datetime(rows["sent_at"], utc=True)
    done = outcomes(rows, keyed[keyed[S.TIMESTAMP] < before])
    table = pd.DataFrame({"hour": rows["sent_at"].dt.hour, "clicked": done["clicked"]})
    out = table.groupby("hour").agg(sends=("clicked", "size"), rate=("clicked", "mean"))
    return out[out["sends"] >= min_sends]
