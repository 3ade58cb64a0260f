"""When an address may no longer be sent to: unsubscribes, hard bounces and runs of soft bounces.

Why not simply "any bounce": most bounces are transient (a full mailbox, a greylisting server, a
receiving server down for an hour). Suppressing an address for good after one of them silently drops
people who are still reachable: on simulated exports with ordinary transient bounces that left 11-16%
of an audience without a send. The rules, per subscriber and channel, judged on the events strictly
before the profile's instant (a later event never changes an earlier profile):

1. An unsubscribe suppresses the channel for good.
2. A hard bounce (`bounce_type` `hard`: the platform says the address is dead) suppresses it for good.
3. Soft bounces, and bounces of unknown type, suppress it only as a run: at least `bounce_run`
   consecutive bounces with no delivery, open or click between them nor after the last one, the first
   and the last at least `bounce_run_days` apart. Any later delivery, open or click ends the run: the
   address is reachable again. (Machine opens count: a mail server fetched the message, so it arrived.)

An unsubscribe or hard bounce wins over a run (it is for good); between the two, the earlier one is
the reason given.

What the feature base keeps (`optouts`, one row per event, kinds below): every bounce and unsubscribe,
and for each bounce the first delivery, open or click on that channel at or after it (REACHED). That
is all rule 3 needs at any instant: a success lies between a bounce and the instant exactly when the
first success after that bounce does, so the millions of other deliveries need not be kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import ProfileSettings

REACHED, BOUNCED, HARD_BOUNCED, UNSUBSCRIBED = 0, 1, 2, 3  # `kind` of an opt-out row (BOUNCED: soft/unknown)
NOT_KEPT = -1
_SUCCESS = (S.DELIVERED, S.OPEN, S.CLICK)
_DAY_NS = 86_400 * 10**9


def optout_kinds(frame: pd.DataFrame, etype: np.ndarray) -> np.ndarray:
    """Per event of `frame` (sub, channel, at, optional bounce_type), its opt-out kind, or NOT_KEPT.

    `frame` holds every event of its subscribers (the whole export, or a Spark group of subscribers),
    so the first success after each bounce is found here as in one call over the export.
    """
    kind = np.full(len(frame), NOT_KEPT, dtype=np.int8)
    bounce = np.flatnonzero(etype == S.BOUNCE)
    kind[etype == S.UNSUBSCRIBE] = UNSUBSCRIBED
    if not bounce.size:
        return kind
    kind[bounce] = BOUNCED
    if S.BOUNCE_TYPE in frame.columns:  # categorical (local engine) or text (Spark groups); NaN/None: unknown
        hard = (frame[S.BOUNCE_TYPE].iloc[bounce] == S.HARD).to_numpy(dtype=bool)
        kind[bounce[hard]] = HARD_BOUNCED

    sub = frame["sub"].to_numpy(np.int64)
    key = sub * len(S.CHANNELS) + frame["channel"].to_numpy(np.int64)
    bounced_key = np.zeros(int(key.max()) + 1, dtype=bool)
    bounced_key[key[bounce]] = True
    nearby = np.flatnonzero(bounced_key[key])  # events of channels that bounced: few, on a big export
    success = nearby[np.isin(etype[nearby], _SUCCESS)]
    if not success.size:
        return kind
    at = pd.DatetimeIndex(frame["at"]).as_unit("ns").asi8
    left = pd.DataFrame({"key": key[bounce], "at": at[bounce]}).sort_values("at", kind="stable")
    right = pd.DataFrame({"key": key[success], "at": at[success], "pos": success}).sort_values(
        "at", kind="stable"
    )
    first = pd.merge_asof(left, right, on="at", by="key", direction="forward", allow_exact_matches=True)
    reached = first["pos"].dropna().to_numpy(np.int64)
    kind[reached] = REACHED
    return kind


def suppressed_as_of(
    optouts: pd.DataFrame, as_of: pd.Timestamp, n: int, settings: ProfileSettings
) -> tuple[np.ndarray, np.ndarray]:
    """bool [n, 2]: the channel may not be sent to; object [n, 2]: why ("" where it may), e.g.
    "hard bounce on 2026-10-07", "3 bounces in a row since 2026-09-30", "unsubscribed on 2026-10-01".
    Reads only the rows of `optouts` (sub, channel, at, kind) strictly before `as_of`."""
    m = n * len(S.CHANNELS)
    suppressed = np.zeros(m, dtype=bool)
    reason = np.full(m, "", dtype=object)
    rows = optouts[optouts["at"] < as_of]
    if rows.empty:
        return suppressed.reshape(n, 2), reason.reshape(n, 2)
    key = rows["sub"].to_numpy(np.int64) * len(S.CHANNELS) + rows["channel"].to_numpy(np.int64)
    at = pd.DatetimeIndex(rows["at"]).as_unit("ns").asi8
    kind = rows["kind"].to_numpy(np.int8) if "kind" in rows.columns else np.full(len(rows), BOUNCED, np.int8)

    # rule 3: the bounces after the last success of their channel form its current run
    last_ok = np.full(m, np.iinfo(np.int64).min, dtype=np.int64)
    ok = kind == REACHED
    np.maximum.at(last_ok, key[ok], at[ok])
    in_run = (kind == BOUNCED) & (at > last_ok[key])
    count = np.bincount(key[in_run], minlength=m)
    first = np.full(m, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(m, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, key[in_run], at[in_run])
    np.maximum.at(last, key[in_run], at[in_run])
    first[count == 0] = last[count == 0] = 0
    run = (count >= settings.bounce_run) & (last - first >= round(settings.bounce_run_days * _DAY_NS))
    suppressed |= run
    reason[run] = _text(count[run].astype(str), " bounces in a row since ", first[run])

    # rules 1 and 2: the earliest unsubscribe or hard bounce, for good
    final = np.flatnonzero((kind == UNSUBSCRIBED) | (kind == HARD_BOUNCED))
    if final.size:
        order = final[np.lexsort((-kind[final], at[final]))]  # by time; an unsubscribe wins a tie
        keys, firsts = np.unique(key[order], return_index=True)
        which = order[firsts]
        words = np.where(kind[which] == UNSUBSCRIBED, "unsubscribed", "hard bounce").astype(object)
        suppressed[keys] = True
        reason[keys] = _text(words, " on ", at[which])
    return suppressed.reshape(n, 2), reason.reshape(n, 2)


def _text(head: np.ndarray, middle: str, at_ns: np.ndarray) -> np.ndarray:
    days = pd.to_datetime(at_ns, utc=True).strftime("%Y-%m-%d").to_numpy(dtype=object)
    return np.asarray(head, dtype=object) + middle + days
