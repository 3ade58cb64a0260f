"""Human engagement signals: which opens and clicks a person made, and which send each one answers.

Why this matters: Apple Mail Privacy Protection opens every message seconds after delivery, so a raw
open histogram shows when the mail server fetched, not when a person read. Clicks are real. Opens are
kept only when they look human, each message counts once, and every engagement is tied to the send it
answers so that its delay (how long the message waited) is known.

Rules, in order:
1. `machine_open` = true when the export has the flag: dropped.
2. Without the flag, a subscriber whose delivered e-mails are opened within `machine_open_seconds` of
   delivery on at least `machine_open_share` of them (with >= `machine_open_min_messages` delivered)
   is an automated reader: their fast opens are dropped, their clicks kept, and their later opens kept
   only when `keep_late_opens_of_automated_readers` (a later open is a person coming back to the mail;
   turn it off for platforms whose proxies re-fetch pixels).
3. Repeated opens or clicks of one message: the first counts. Without message ids, events of one kind
   on one channel within 30 minutes of each other count once.
4. Sends are marked `triggered` (a journey) or not (a campaign blast): see `triggered_sends`.
5. Attribution: by `message_id` when present, else the latest send to the subscriber on that channel
   within `attribution_hours` before the engagement. Exports without sends (opens only) keep their
   engagements unattributed (no delay).
6. Opt-outs: bounces (with their type), unsubscribes, and the first delivery, open or click after
   each bounce, which is what the suppression rules read (features/suppression.py).

Split exports (the Spark engine runs `extract_signals` on one group of subscribers at a time): every
rule above is per subscriber except three facts about the whole export, which a `SignalContext` carries
in: whether it has sends at all (else deliveries stand in), whether it has deliveries, and the blast
counts per channel and ten-minute bucket. An optional `row` column (the event's position in the
export) is carried through to every output table, so that the groups' outputs can be put back in the
order one call over the whole export gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import SignalSettings
from sendtime.features import suppression

OPEN_KIND, CLICK_KIND = 0, 1
ROW = "row"  # optional event position, carried through to the output tables when the input has it
_DEDUP_WINDOW = pd.Timedelta(minutes=30)


@dataclass
class Signals:
    sends: pd.DataFrame  # sub, channel, at
    engagements: pd.DataFrame  # sub, channel, at, kind, sent_at, delay_h
    optouts: pd.DataFrame  # sub, channel, at, kind (features/suppression.py)
    stats: dict[str, int] = field(default_factory=dict)


def _first_per_message(events: pd.DataFrame) -> pd.DataFrame:
    """Keep the first event per (sub, channel, message); without ids, one per 30-minute burst."""
    events = events.sort_values("at", kind="stable")
    with_id = events["message_id"].notna().to_numpy()
    keep = np.zeros(len(events), dtype=bool)
    if with_id.any():
        keep[with_id] = ~events[with_id].duplicated(["sub", "channel", "message_id"]).to_numpy()
    if (~with_id).any():
        rest = events[~with_id].sort_values(["sub", "channel", "at"], kind="stable")
        gap = rest["at"].diff()
        new_burst = (
            (rest["sub"].diff() != 0) | (rest["channel"].diff() != 0) | gap.isna() | (gap > _DEDUP_WINDOW)
        ).to_numpy()
        keep_rest = pd.Series(new_burst, index=rest.index).reindex(events.index[~with_id]).to_numpy()
        keep[~with_id] = keep_rest
    return events[keep]


def _time_by_message(events: pd.DataFrame, sends: pd.DataFrame) -> pd.Series:
    """Per event, the first send (or delivery) of its own message to that person on that channel, else NaT.

    Keyed by (sub, channel, message_id), never the id alone: some platforms reuse one id for a whole
    campaign, and a send-time optimised campaign reaches each person at another time. The key is packed
    into one integer so that the lookup stays a fast hash join on exports with millions of messages.
    """
    out = pd.Series(pd.NaT, index=events.index, dtype="datetime64[ns, UTC]")
    has_id = events["message_id"].notna().to_numpy()
    sends = sends[sends["message_id"].notna().to_numpy()]
    if sends.empty or not has_id.any():
        return out
    sends = sends.sort_values("at", kind="stable")
    wanted = events[has_id]
    ids = _message_codes(sends["message_id"], wanted["message_id"])
    n_sub = int(max(sends["sub"].max(), wanted["sub"].max())) + 1

    def packed(frame: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
        key = codes.astype(np.int64) * n_sub + frame["sub"].to_numpy(np.int64)
        return key * len(S.CHANNELS) + frame["channel"].to_numpy(np.int64)

    send_key = packed(sends, ids[: len(sends)])
    first = ~pd.Series(send_key).duplicated().to_numpy()  # sorted by time: the first send of each message
    pos = pd.Index(send_key[first]).get_indexer(packed(wanted, ids[len(sends) :]))
    found = pos >= 0
    ns = np.full(len(events), np.iinfo(np.int64).min, dtype=np.int64)  # int64 nanoseconds; min is NaT
    ns[np.flatnonzero(has_id)[found]] = sends["at"].array.as_unit("ns").asi8[first][pos[found]]
    return pd.Series(pd.to_datetime(ns, utc=True), index=events.index)


def _message_codes(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Integer codes for the ids of a and b together; categoricals of one vocabulary need no re-hashing."""
    if (
        isinstance(a.dtype, pd.CategoricalDtype)
        and isinstance(b.dtype, pd.CategoricalDtype)
        and a.cat.categories.equals(b.cat.categories)
    ):
        return np.concatenate([a.cat.codes.to_numpy(np.int64), b.cat.codes.to_numpy(np.int64)])
    return pd.factorize(np.concatenate([a.to_numpy(object), b.to_numpy(object)]))[0]


def _attribute(engaged: pd.DataFrame, sends: pd.DataFrame, settings: SignalSettings) -> pd.DataFrame:
    """Attach the answered send's time: by message id first, else the latest earlier send in range."""
    engaged = engaged.copy()
    engaged["sent_at"] = pd.Series(pd.NaT, index=engaged.index, dtype="datetime64[ns, UTC]")
    if sends.empty or engaged.empty:
        return engaged
    engaged["sent_at"] = _time_by_message(engaged, sends)
    missing = engaged["sent_at"].isna()
    if missing.any():
        left = engaged.loc[missing, ["sub", "channel", "at"]].reset_index().sort_values("at")
        right = sends[["sub", "channel", "at"]].rename(columns={"at": "sent_at"}).sort_values("sent_at")
        matched = pd.merge_asof(
            left,
            right,
            left_on="at",
            right_on="sent_at",
            by=["sub", "channel"],
            direction="backward",
            tolerance=pd.Timedelta(hours=settings.attribution_hours),
        ).set_index("index")
        engaged.loc[matched.index, "sent_at"] = matched["sent_at"]
    late = engaged["sent_at"] > engaged["at"]  # a clock skew or a reused id: do not invent a negative delay
    engaged.loc[late, "sent_at"] = pd.NaT
    return engaged


def _automated_readers(opens: pd.DataFrame, delivered: pd.DataFrame, settings: SignalSettings) -> np.ndarray:
    """Subscribers whose e-mails are opened within seconds of delivery nearly every time."""
    if opens.empty or delivered.empty:
        return np.array([], dtype=np.int64)
    timed = opens.dropna(subset=["sent_at"])
    delay = (timed["at"] - timed["delivered_at"]).dt.total_seconds()
    fast = timed[(delay >= 0) & (delay <= settings.machine_open_seconds)]
    fast_msgs = fast.drop_duplicates(["sub", "sent_at"]).groupby("sub").size()
    n_delivered = delivered.groupby("sub").size()
    share = (fast_msgs.reindex(n_delivered.index, fill_value=0) / n_delivered).fillna(0)
    flagged = share[
        (share >= settings.machine_open_share) & (n_delivered >= settings.machine_open_min_messages)
    ]
    return flagged.index.to_numpy()


BLAST_BUCKET = "10min"
BLAST_MIN_SENDS = 10
BLAST_AUDIENCE_SHARE = 0.01


@dataclass(frozen=True)
class SignalContext:
    """What `extract_signals` must know about the whole export when it sees one group of subscribers."""

    sends_are_deliveries: bool  # the export has no sends but has deliveries: they stand in for the sends
    has_deliveries: bool  # open delays are measured from deliveries (else from sends)
    blast_sizes: pd.Series  # sends per (channel code, bucket start in ns since the epoch), whole export
    audience: np.ndarray  # int [2]: distinct subscribers sent to, per channel code, whole export


def blast_bucket_ns(at: pd.Series) -> np.ndarray:
    """Start of each instant's ten-minute blast bucket, in ns since the epoch (what `triggered_sends` groups by)."""
    return pd.DatetimeIndex(at.dt.floor(BLAST_BUCKET)).as_unit("ns").asi8


def triggered_sends(sends: pd.DataFrame, context: SignalContext | None = None) -> np.ndarray:
    """True for sends that went out on their own (journeys), False for campaign blasts.

    Exports rarely say which is which, but a blast is unmistakable: many recipients on one channel
    within the same ten minutes. A triggered send (browse or cart abandonment) follows the person's own
    activity, so its time is evidence of when they are around; a blast's time is only the brand's.
    With a `context`, the counts are the whole export's (`sends` may be one group of subscribers).
    """
    if sends.empty:
        return np.zeros(0, dtype=bool)
    if context is not None:
        channel = sends["channel"].to_numpy(np.int64)
        where = pd.MultiIndex.from_arrays([channel, blast_bucket_ns(sends["at"])])
        size = context.blast_sizes.reindex(where).to_numpy()
        if np.isnan(size.astype(float)).any():
            raise ValueError("triggered_sends: the context has no blast count for some sends")
        audience = np.asarray(context.audience)[channel]
        return size < np.maximum(BLAST_MIN_SENDS, BLAST_AUDIENCE_SHARE * audience)
    bucket = sends["at"].dt.floor(BLAST_BUCKET)
    size = sends.groupby([sends["channel"], bucket])["sub"].transform("size").to_numpy()
    audience = sends.groupby("channel")["sub"].transform("nunique").to_numpy()
    threshold = np.maximum(BLAST_MIN_SENDS, BLAST_AUDIENCE_SHARE * audience)
    return size < threshold


def extract_signals(
    frame: pd.DataFrame, settings: SignalSettings, context: SignalContext | None = None
) -> Signals:
    """`frame`: sub, channel (index), event_type, at (UTC), message_id, machine_open, optionally
    bounce_type (hard/soft/missing) and `row`.

    `context` None: the frame is the whole export. Otherwise the frame holds every event of some
    subscribers, and the context the whole export's facts (see the module docstring).
    """
    stats: dict[str, int] = {}
    extra = [ROW] if ROW in frame.columns else []
    etype = frame["event_type"].to_numpy()
    sends = frame[etype == S.SEND][["sub", "channel", "at", "message_id", *extra]]
    delivered = frame[etype == S.DELIVERED][["sub", "channel", "at", "message_id", *extra]]
    if (sends.empty and not delivered.empty) if context is None else context.sends_are_deliveries:
        sends = delivered  # some platforms export deliveries only: they are the sends we can see
    sends = sends.sort_values("at", kind="stable").reset_index(drop=True)
    sends["triggered"] = triggered_sends(sends, context)
    stats["sends"] = len(sends)
    stats["triggered_sends"] = int(sends["triggered"].sum())

    opens = frame[(etype == S.OPEN) & (frame["channel"].to_numpy() == 0)]
    flagged = opens["machine_open"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    stats["machine_opens_flagged"] = int(flagged.sum())
    opens = opens[~flagged]
    clicks = frame[etype == S.CLICK]
    stats["opens_raw"] = len(opens) + int(flagged.sum())
    stats["clicks_raw"] = len(clicks)

    opens = _attribute(opens[["sub", "channel", "at", "message_id", *extra]], sends, settings)
    has_deliveries = not delivered.empty if context is None else context.has_deliveries
    delivery_time = delivered if has_deliveries else sends
    if not delivery_time.empty and not opens.empty:
        opens["delivered_at"] = _time_by_message(opens, delivery_time).fillna(opens["sent_at"])
        email_delivered = delivery_time[delivery_time["channel"] == 0]
        readers = _automated_readers(opens, email_delivered, settings)
    else:
        readers = np.array([], dtype=np.int64)
    machine = opens["sub"].isin(readers).to_numpy()
    if settings.keep_late_opens_of_automated_readers and machine.any():
        delay = (opens["at"] - opens["delivered_at"]).dt.total_seconds().to_numpy()
        late = np.nan_to_num(delay, nan=-1.0) > settings.machine_open_seconds
        machine &= ~late
    stats["automated_readers"] = len(readers)
    stats["machine_opens_detected"] = int(machine.sum())
    opens = opens[~machine]

    n_opens, n_clicks = len(opens), len(clicks)
    opens = _first_per_message(opens)
    clicks = _first_per_message(
        _attribute(clicks[["sub", "channel", "at", "message_id", *extra]], sends, settings)
    )
    stats["duplicate_opens"] = n_opens - len(opens)
    stats["duplicate_clicks"] = n_clicks - len(clicks)

    engaged = pd.concat(
        [opens.assign(kind=np.int8(OPEN_KIND)), clicks.assign(kind=np.int8(CLICK_KIND))], ignore_index=True
    )[["sub", "channel", "at", "kind", "sent_at", *extra]]
    engaged["delay_h"] = (engaged["at"] - engaged["sent_at"]).dt.total_seconds() / 3600.0
    engaged = engaged.sort_values("at", kind="stable").reset_index(drop=True)
    stats["human_opens"] = int((engaged["kind"] == OPEN_KIND).sum())
    stats["clicks"] = int((engaged["kind"] == CLICK_KIND).sum())
    stats["unattributed_engagements"] = int(engaged["sent_at"].isna().sum())

    kinds = suppression.optout_kinds(frame, etype)
    kept = kinds != suppression.NOT_KEPT
    optouts = frame[kept][["sub", "channel", "at", *extra]].reset_index(drop=True)
    optouts["kind"] = kinds[kept]
    for name, kind in (
        ("bounces", suppression.BOUNCED),
        ("hard_bounces", suppression.HARD_BOUNCED),
        ("unsubscribes", suppression.UNSUBSCRIBED),
    ):
        stats[name] = int((optouts["kind"] == kind).sum())
    stats["optouts"] = stats["bounces"] + stats["hard_bounces"] + stats["unsubscribes"]
    return Signals(
        sends=sends[["sub", "channel", "at", "triggered", *extra]],
        engagements=engaged,
        optouts=optouts,
        stats=stats,
    )
