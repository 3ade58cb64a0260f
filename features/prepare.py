"""From a validated data folder to the feature base: hashed subscribers, sends, human engagements.

Everything after this step is keyed by an integer subscriber index and a salted `subscriber_id`; raw
addresses stop here. Address work is done once per distinct (channel, address) text, never per event,
because exports repeat the same address thousands of times.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity, local_time, phones, signals, us_area_codes
from sendtime.features.load import DataFolder

log = logging.getLogger(__name__)

CHANNEL_INDEX = {c: i for i, c in enumerate(S.CHANNELS)}


@dataclass
class FeatureBase:
    """One person per row of `subscribers`; event tables refer to them by integer `sub` (row position)."""

    subscribers: pd.DataFrame  # subscriber_id, timezone, tz_source, has_email, has_sms, phone_state
    addresses: pd.DataFrame  # channel, address_hash, subscriber_id: the lookup the service needs
    sends: pd.DataFrame  # sub, channel, at, how
    engagements: pd.DataFrame  # sub, channel, at, how, kind (0 open, 1 click), sent_at, delay_h
    optouts: pd.DataFrame  # sub, channel, at, kind: bounces, unsubscribes (features/suppression.py)
    has_sends: bool
    stats: dict[str, int] = field(default_factory=dict)
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def span(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        times = [t for t in (self.sends["at"], self.engagements["at"]) if len(t)]
        return min(t.min() for t in times), max(t.max() for t in times)


def _distinct_addresses(
    data: DataFolder, default_region: str, zones: dict[str, str | None] | None = None
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """Normalise each distinct (channel, raw address) once; map events to it by integer codes.
    `zones` collects the timezones of the phone numbers parsed (`identity.normalise_phones`)."""
    ev = data.events
    addr_codes, addr_uniques = pd.factorize(ev[S.ADDRESS])
    pair = addr_codes.astype(np.int64) * len(S.CHANNELS) + ev[S.CHANNEL].cat.codes.to_numpy()
    pairs, codes = np.unique(pair, return_inverse=True)
    distinct = pd.DataFrame(
        {
            S.CHANNEL: np.asarray(S.CHANNELS, dtype=object)[pairs % len(S.CHANNELS)],
            "raw": np.asarray(addr_uniques, dtype=object)[pairs // len(S.CHANNELS)],
        }
    )
    distinct[S.ADDRESS] = identity.normalise_addresses(
        distinct["raw"], distinct[S.CHANNEL], default_region, zones
    )
    unusable = distinct[S.ADDRESS].isna().to_numpy()
    event_bad = unusable[codes]
    reject_rows = pd.DataFrame(
        {
            "table": S.EVENTS_TABLE,
            "file": "events",
            "row": np.flatnonzero(event_bad) + 1,
            "field": S.ADDRESS,
            "reason": np.where(
                distinct.loc[codes[event_bad], S.CHANNEL].to_numpy() == S.SMS,
                "unparseable phone number",
                "invalid e-mail address",
            ),
        }
    )
    return distinct, codes, reject_rows


def _subscriber_addresses(
    data: DataFolder, default_region: str, zones: dict[str, str | None] | None = None
) -> pd.DataFrame | None:
    if data.subscribers is None:
        return None
    subs = data.subscribers.copy()
    subs[S.ADDRESS] = identity.normalise_addresses(subs[S.ADDRESS], subs[S.CHANNEL], default_region, zones)
    return subs[subs[S.ADDRESS].notna()]


def timezone_sources(
    subs: pd.DataFrame,
    idmap: identity.IdentityMap,
    table: pd.DataFrame | None,
    zones: Mapping[str, str | None] | None = None,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per person (by row of `subs`): timezone of their own subscribers-table row, of their phone number,
    and of a linked row; <NA> where the source says nothing. Needs no events. `zones`: the timezones of
    numbers already parsed (E.164 -> zone), which are not parsed again."""
    n = len(subs)
    table_tz = pd.Series(pd.NA, index=range(n), dtype=object)
    linked_tz = pd.Series(pd.NA, index=range(n), dtype=object)
    if table is not None and S.TIMEZONE in table.columns:
        rows = table[table[S.TIMEZONE].notna()].copy()
        rows["sid"] = idmap.subscriber_ids(rows[S.CHANNEL], rows[S.ADDRESS]).to_numpy()
        rows["sub"] = subs.index.to_series(index=subs[S.SUBSCRIBER_ID]).reindex(rows["sid"]).to_numpy()
        rows = rows[pd.notna(rows["sub"])]
        own = rows[rows[S.CHANNEL] == S.EMAIL].drop_duplicates("sub")  # e-mail row first, then phone row
        other = rows[rows[S.CHANNEL] == S.SMS].drop_duplicates("sub")
        table_tz.loc[own["sub"].astype(int).to_numpy()] = own[S.TIMEZONE].to_numpy()
        only_phone = other[~other["sub"].isin(own["sub"])]
        table_tz.loc[only_phone["sub"].astype(int).to_numpy()] = only_phone[S.TIMEZONE].to_numpy()
        both = other[other["sub"].isin(own["sub"])]
        linked_tz.loc[both["sub"].astype(int).to_numpy()] = both[S.TIMEZONE].to_numpy()
    phone_tz = phones.zones_for_e164(subs["phone"], zones or {}).reset_index(drop=True)
    return table_tz, phone_tz, linked_tz


def _resolve_timezones(
    subs: pd.DataFrame,
    idmap: identity.IdentityMap,
    table: pd.DataFrame | None,
    settings: Settings,
    zones: Mapping[str, str | None] | None = None,
) -> pd.DataFrame:
    """Timezone per person by precedence: own row in the subscribers table, phone, linked row, default.

    The activity pattern is not used here: it would look at every event, later ones included. People
    left on the default get a zone inferred from their activity per profile instant instead
    (`profiles.timezones_as_of`), from the events before that instant only.
    """
    table_tz, phone_tz, linked_tz = timezone_sources(subs, idmap, table, zones)
    activity_tz = pd.Series(pd.NA, index=range(len(subs)), dtype=object)
    return finish_timezones(subs, (table_tz, phone_tz, linked_tz, activity_tz), settings)


def finish_timezones(subs: pd.DataFrame, sources: tuple[pd.Series, ...], settings: Settings) -> pd.DataFrame:
    """`local_time.resolve_timezones` over the four sources (table, phone, linked, activity), in that order."""
    return local_time.resolve_timezones(
        subs[S.SUBSCRIBER_ID].reset_index(drop=True), *sources, settings.data.default_timezone
    )


def resolve_people(
    event_pairs: pd.DataFrame, table: pd.DataFrame | None, links: pd.DataFrame | None, settings: Settings
) -> tuple[identity.IdentityMap, pd.DataFrame]:
    """The global identity step: people from the distinct normalised (channel, address) pairs of the
    events, the subscribers table and the identity links; one row per person, sorted by subscriber_id,
    with has_email, has_sms and (raw, for timezones and states only) their phone."""
    pairs = [event_pairs[[S.CHANNEL, S.ADDRESS]]]
    if table is not None:
        pairs.append(table[[S.CHANNEL, S.ADDRESS]])
    idmap = identity.resolve_identities(
        pd.concat(pairs, ignore_index=True),
        links,
        settings.salt(),
        max_addresses_per_channel=settings.identity.max_addresses_per_channel,
        default_region=settings.data.default_region,
    )
    addr = idmap.addresses
    subscriber_ids = pd.Index(np.sort(addr[S.SUBSCRIBER_ID].unique()))
    subs = pd.DataFrame({S.SUBSCRIBER_ID: subscriber_ids})
    addr_sub = subscriber_ids.get_indexer(addr[S.SUBSCRIBER_ID])
    subs["has_email"] = (
        np.bincount(addr_sub[(addr[S.CHANNEL] == S.EMAIL).to_numpy()], minlength=len(subs)) > 0
    )
    subs["has_sms"] = np.bincount(addr_sub[(addr[S.CHANNEL] == S.SMS).to_numpy()], minlength=len(subs)) > 0
    phones = addr[addr[S.CHANNEL] == S.SMS].assign(sub=addr_sub[(addr[S.CHANNEL] == S.SMS).to_numpy()])
    phones = phones.drop_duplicates("sub")
    subs["phone"] = pd.Series(pd.NA, index=subs.index, dtype=object)
    subs.loc[phones["sub"].to_numpy(), "phone"] = phones[S.ADDRESS].to_numpy()
    return idmap, subs


def finish_subscribers(subs: pd.DataFrame, tz: pd.DataFrame) -> pd.DataFrame:
    """Timezone, its source and the phone's US state per person; the raw phone number is dropped here."""
    subs = subs.copy()
    subs["timezone"] = tz["timezone"].to_numpy()
    subs[S.TZ_SOURCE] = tz[S.TZ_SOURCE].to_numpy()
    subs["phone_state"] = us_area_codes.state_for_phones(subs["phone"]).to_numpy()
    return subs.drop(columns=["phone"])  # raw phone numbers stop here


def identity_stats(
    unusable: int, idmap: identity.IdentityMap, subs: pd.DataFrame, tz: pd.DataFrame
) -> dict[str, int]:
    return {
        "unusable_addresses": unusable,
        "refused_links": idmap.refused_links,
        "unusable_links": idmap.unusable_links,
        "subscribers": len(subs),
        "invalid_timezones": int(tz.attrs.get("invalid_timezones", 0)),
    }


def address_lookup(idmap: identity.IdentityMap) -> pd.DataFrame:
    """channel, address_hash, subscriber_id: what the service needs to find a profile (no raw address)."""
    return idmap.addresses[[S.CHANNEL, S.ADDRESS_HASH, S.SUBSCRIBER_ID]].reset_index(drop=True)


def _bounce_types(events: pd.DataFrame, usable: np.ndarray) -> pd.Categorical:
    """The usable rows' bounce types (hard/soft/missing); a DataFolder made without the column has none."""
    if S.BOUNCE_TYPE in events.columns:
        return events[S.BOUNCE_TYPE].array[usable]
    return pd.Categorical.from_codes(np.full(int(usable.sum()), -1, np.int8), categories=list(S.BOUNCE_TYPES))


def build_feature_base(data: DataFolder, settings: Settings, progress: bool = False) -> FeatureBase:
    """Identity, engagement signals and local time for a whole data folder."""
    region = settings.data.default_region
    zones: dict[str, str | None] = {}  # phone timezones from the parse that normalises the numbers
    distinct, codes, address_rejects = _distinct_addresses(data, region, zones)
    table = _subscriber_addresses(data, region, zones)
    idmap, subs = resolve_people(distinct[distinct[S.ADDRESS].notna()], table, data.links, settings)
    subscriber_ids = pd.Index(subs[S.SUBSCRIBER_ID])

    # events -> integer subscriber per distinct address, then per row by code
    distinct_sid = idmap.subscriber_ids(distinct[S.CHANNEL], distinct[S.ADDRESS])
    distinct_sub = subscriber_ids.get_indexer(distinct_sid.fillna("").to_numpy())
    ev = data.events
    event_sub = distinct_sub[codes]
    usable = event_sub >= 0
    frame = pd.DataFrame(
        {
            "sub": event_sub[usable].astype(np.int32),
            "channel": ev[S.CHANNEL].cat.codes.to_numpy()[usable].astype(np.int8),
            "event_type": ev[S.EVENT_TYPE].to_numpy()[usable],
            "at": ev[S.TIMESTAMP].array[usable],  # stays a datetime array: no Timestamp objects per row
            "message_id": ev[S.MESSAGE_ID].array[usable],
            "machine_open": ev[S.MACHINE_OPEN].to_numpy()[usable],
            S.BOUNCE_TYPE: _bounce_types(ev, usable),
        }
    )
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    sig = signals.extract_signals(frame, settings.signals)

    tz = _resolve_timezones(subs, idmap, table, settings, zones)
    subs = finish_subscribers(subs, tz)

    tz_of = subs["timezone"].to_numpy()
    for table_ in (sig.sends, sig.engagements):
        table_["how"] = local_time.local_hour_of_week(
            table_["at"], pd.Series(tz_of[table_["sub"].to_numpy()])
        )

    stats = dict(sig.stats)
    stats.update(identity_stats(int((~usable).sum()), idmap, subs, tz))
    lookup = address_lookup(idmap)
    log.info(
        "features built: %s subscribers, %s sends, %s human engagements",
        f"{len(subs):,}",
        f"{len(sig.sends):,}",
        f"{len(sig.engagements):,}",
    )
    return FeatureBase(
        subscribers=subs,
        addresses=lookup,
        sends=sig.sends,
        engagements=sig.engagements,
        optouts=sig.optouts,
        has_sends=len(sig.sends) > 0,
        stats=stats,
        rejects=address_rejects,
    )
