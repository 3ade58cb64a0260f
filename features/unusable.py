"""Rows found unusable after loading: addresses that are neither an e-mail address nor a phone number.

`load.load_folder` judges a row by its own text; whether its address is a usable e-mail address or a
valid phone number is only known once identities are built (`prepare` parses each distinct number
once, and says which event rows it could not use). Those rows are rejects like any other: numbered by
row of their file, written to rejects.csv, printed, and held to `data.bad_share_limit` together with
the load's own rejects. Without this an export whose addresses were 30% unusable trained and was
promoted without a word.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity
from sendtime.features.load import REJECT_COLUMNS, DataFolder
from sendtime.features.tables import DataError, find_table

PHONE_REASON = "unparseable phone number"  # the reasons `prepare._distinct_addresses` gives event rows
EMAIL_REASON = "invalid e-mail address"


def file_rows(data: DataFolder, table: str, positions: np.ndarray) -> np.ndarray:
    """1-based row numbers in the table's file of rows at 0-based `positions` of its validated table.

    The load drops exactly the rows it lists in `data.rejects`, in file order, so the validated rows
    are the file's rows minus those.
    """
    n = data.raw_rows.get(table, 0)
    dropped = np.zeros(n, dtype=bool)
    if not data.rejects.empty:
        rows = data.rejects.loc[data.rejects["table"] == table, "row"].to_numpy(dtype=np.int64)
        dropped[rows - 1] = True
    return np.flatnonzero(~dropped)[np.asarray(positions, dtype=np.int64)] + 1


def _file_name(data: DataFolder, table: str) -> str:
    path = find_table(data.path, table)
    return path.name if path is not None else table


def _frame(data: DataFolder, table: str, positions: np.ndarray, field: str, reasons) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": table,
            "file": _file_name(data, table),
            "row": file_rows(data, table, positions),
            "field": field,
            "reason": reasons,
        },
        columns=REJECT_COLUMNS,
    )


def event_rejects(data: DataFolder, address_rejects: pd.DataFrame) -> pd.DataFrame:
    """`FeatureBase.rejects` (numbered by position among the validated events) numbered by file row."""
    if address_rejects is None or address_rejects.empty:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    positions = address_rejects["row"].to_numpy(dtype=np.int64) - 1
    return _frame(data, S.EVENTS_TABLE, positions, S.ADDRESS, address_rejects["reason"].to_numpy())


def subscriber_rejects(data: DataFolder, default_region: str) -> pd.DataFrame:
    """Subscribers-table rows whose address is unusable on its channel (`prepare` leaves them out)."""
    subs = data.subscribers
    if subs is None or subs.empty:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    normal = identity.normalise_addresses(subs[S.ADDRESS], subs[S.CHANNEL], default_region)
    bad = normal.isna().to_numpy()
    channel = subs[S.CHANNEL].astype(str).to_numpy()[bad]
    reasons = np.where(channel == S.SMS, PHONE_REASON, EMAIL_REASON)
    return _frame(data, S.SUBSCRIBERS_TABLE, np.flatnonzero(bad), S.ADDRESS, reasons)


def link_rejects(data: DataFolder, default_region: str) -> pd.DataFrame:
    """Identity links with an end that is no usable address (`identity` refuses them, counting only)."""
    links = data.links
    if links is None or links.empty:
        return pd.DataFrame(columns=REJECT_COLUMNS)
    bad = np.zeros(len(links), dtype=bool)
    reasons = np.full(len(links), "", dtype=object)
    for side in (S.ADDRESS_B, S.ADDRESS_A):  # the first unusable end gives the reason
        channel = identity.guess_channel(links[side])
        unusable = identity.normalise_addresses(links[side], channel, default_region).isna().to_numpy()
        reasons[unusable] = np.where(
            channel.to_numpy(dtype=object)[unusable] == S.SMS, PHONE_REASON, EMAIL_REASON
        )
        bad |= unusable
    return _frame(data, S.LINKS_TABLE, np.flatnonzero(bad), "address_a/address_b", reasons[bad])


def add_address_rejects(data: DataFolder, address_rejects: pd.DataFrame, settings: Settings) -> DataFolder:
    """Add the rows with unusable addresses (all tables) to `data.rejects`, in place, and fail as the
    load does when the rejected share of event rows now passes `data.bad_share_limit`."""
    region = settings.data.default_region
    parts = [
        event_rejects(data, address_rejects),
        subscriber_rejects(data, region),
        link_rejects(data, region),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return data
    frames = [data.rejects, *parts] if not data.rejects.empty else parts
    data.rejects = pd.concat(frames, ignore_index=True)
    n_raw = data.raw_rows.get(S.EVENTS_TABLE, 0)
    n_bad = int((data.rejects["table"] == S.EVENTS_TABLE).sum())
    share = n_bad / max(n_raw, 1)
    limit = settings.data.bad_share_limit
    if share > limit:
        counts = "; ".join(f"{k}: {v:,}" for k, v in data.reject_counts().items())
        where = find_table(data.path, S.EVENTS_TABLE) or data.path
        raise DataError(
            f"{where}: {n_bad:,} of {n_raw:,} rows ({share:.1%}) cannot be used, "
            f"more than data.bad_share_limit={limit:.0%} ({counts})"
        )
    return data
