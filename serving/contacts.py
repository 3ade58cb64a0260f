"""Contact resolution: e-mail addresses and phone numbers to the profiles, zones and SMS constraints
the predictor scores with (`Audience`).

Contacts are normalised and hashed exactly as training did, then looked up in the profile snapshot's
address index. Unknown contacts are never an error: they get the linked profile, their cohort
(timezone from the phone number) or the population. Small calls (the HTTP API) memoise per contact and
resolve new contacts on plain values (`contact_scalars`); million-row audiences resolve in forked workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from sendtime import forking
from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity, local_time, phones
from sendtime.features.priors import cohort_keys
from sendtime.features.profiles import Profiles
from sendtime.features.us_area_codes import state_for_phones
from sendtime.serving import contact_scalars
from sendtime.serving.quiet_hours import zone_sets

# Latency of small calls (the HTTP API): none of these changes a number, only how fast it comes.
SMALL_AUDIENCE = (
    5_000  # up to this many contacts a call, per-contact results are memoised (and timezone grids)
)
MEMO_LIMIT = 50_000  # memoised contacts per channel (and timezone x window grids) before a memo starts over
SCALAR_CONTACTS = 500  # up to this many new contacts a call are resolved one by one on plain values
PARALLEL_CONTACTS = 50_000  # audience rows from which contacts are resolved on every core (forked workers)


@dataclass
class Audience:
    """Resolved contacts: per channel the profile row to use (-1: none) and whether the channel may be used."""

    subscriber_id: np.ndarray  # object [n]
    rows: np.ndarray  # int [n, 2]
    has: np.ndarray  # bool [n, 2]: a valid contact, not opted out
    invalid: np.ndarray  # bool [n, 2]: a contact was given but cannot be parsed
    opted_out: np.ndarray  # bool [n, 2]
    timezone: np.ndarray  # object [n]: the zone the hour-of-week patterns are read in
    # object [n]: subscribers_table | phone | linked_profile | activity | declared | default
    tz_source: np.ndarray
    state: np.ndarray  # object [n]
    cohort: np.ndarray  # int [n]
    pattern: np.ndarray  # object [n, 2]: where each channel's pattern comes from
    # object [n]: every zone that must allow a text (a `quiet_hours.zone_sets` key); None: no SMS hour.
    # Not given (an audience built by hand): the pattern zone alone.
    sms_zones: np.ndarray | None = None
    # object [n, 2]: why a channel is opted out ("email suppressed: hard bounce on 2026-10-07"), "" if not
    optout_reason: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.sms_zones is None:
            self.sms_zones = np.asarray(self.timezone, dtype=object).copy()
        if self.optout_reason is None:  # built by hand (tests, stand-ins): the plain words
            words = np.array([f"{c} opted out" for c in S.CHANNELS], dtype=object)
            self.optout_reason = np.where(np.asarray(self.opted_out, bool), words[None, :], "").astype(object)

    def __len__(self) -> int:
        return len(self.subscriber_id)

    def take(self, rows: np.ndarray | slice) -> Audience:
        """The audience of these rows (indices or a slice), every field alike."""
        return Audience(*(np.asarray(getattr(self, f))[rows] for f in Audience.__dataclass_fields__))

    def base_reasons(self) -> np.ndarray:
        """One phrase per subscriber: the pattern source of the best-known channel."""
        known = np.where(self.has[:, 0], self.pattern[:, 0], self.pattern[:, 1])
        return np.asarray(known, dtype=object)


def _optout_reasons(table: pd.DataFrame, opted: np.ndarray) -> np.ndarray:
    """object [n, 2]: "<channel> suppressed: <the rule that applied>" where opted out, else "". A snapshot
    written before the rules had reasons (no `<channel>_optout_reason` column) says "<channel> opted out"."""
    out = np.full(opted.shape, "", dtype=object)
    for c, name in enumerate(S.CHANNELS):
        rows = np.flatnonzero(opted[:, c])
        column = f"{name}_optout_reason"
        why = table[column].to_numpy(dtype=object)[rows] if column in table.columns else [""] * len(rows)
        out[rows, c] = [
            f"{name} suppressed: {w}" if isinstance(w, str) and w else f"{name} opted out" for w in why
        ]
    return out


class ContactColumns(NamedTuple):
    """Per contact on one channel (0 e-mail, 1 phone): what `ContactIndex` finds; arrays of length n."""

    given: np.ndarray  # bool: a contact was given (not None, NaN or blank)
    valid: np.ndarray  # bool: it normalises (a plausible address, a parseable number)
    own: np.ndarray  # int64: its own profile row, -1 when the snapshot does not know it
    new_id: np.ndarray  # object: the subscriber id a new person gets from it (None when invalid)
    zone: np.ndarray  # object: phones: the number's timezone (else None)
    state: np.ndarray  # object: phones: its US state (else None)
    zones: np.ndarray  # object: phones: every zone it may be in, `local_time.phone_zone_sets` (else None)


class ContactIndex:
    """A profile snapshot's address index: resolves (email, phone[, timezone]) rows to an `Audience`."""

    def __init__(self, profiles: Profiles, settings: Settings) -> None:
        self.settings = settings
        table = profiles.table
        self._profiles = profiles
        self._row_of_id = pd.Index(table[S.SUBSCRIBER_ID])
        addr = profiles.addresses
        self._row_of_hash = {
            c: pd.Series(
                self._row_of_id.get_indexer(addr.loc[addr[S.CHANNEL] == c, S.SUBSCRIBER_ID]),
                index=addr.loc[addr[S.CHANNEL] == c, S.ADDRESS_HASH].to_numpy(),
            )
            for c in S.CHANNELS
        }
        self._hash_lookup = [(rows.index, rows.to_numpy()) for rows in self._row_of_hash.values()]
        self._opted = np.stack([table[f"{c}_opted_out"].to_numpy(bool) for c in S.CHANNELS], axis=1)
        self._optout_reason = _optout_reasons(table, self._opted)
        # profile columns resolve() reads, taken out of the frame once
        self._ids = table[S.SUBSCRIBER_ID].to_numpy()
        self._zone = table["timezone"].to_numpy(dtype=object)
        self._zone_source = table[S.TZ_SOURCE].to_numpy(dtype=object)
        self._pattern_source = [table[f"{c}_pattern_source"].to_numpy(dtype=object) for c in S.CHANNELS]
        self._cohort_of = {name: i for i, name in enumerate(profiles.cohorts)}
        # memo of pure per-contact results; thread-safe without locks
        self._contact_memo: list[dict] = [{}, {}]
        self._memo_salt = settings.salt()

    def resolve(
        self,
        emails: Sequence[str | None],
        phones: Sequence[str | None],
        timezones: Sequence[str | None] | None = None,
    ) -> Audience:
        """Profiles, zones and SMS constraints of each (email, phone[, timezone]) contact.

        Zones, in order of trust: a zone the row declares (`timezones`, IANA; the sending system knows
        it) or a subscribers-table zone, then the number's own, then a linked row's or the activity
        pattern's, then `data.default_timezone`. A known person's patterns are read in the zone they were
        learnt in (their profile's: the instants they engaged at stay the same whatever the zone is
        called); people without a trusted profile zone take the declared zone, else the number's.

        `sms_zones` is what SMS quiet hours check, all of it: the declared zone, every zone the phone
        number may be in, and the zones of the profiles used (subscribers table, phone, linked row or
        activity), so a zone guessed from activity adds a constraint and never lifts the number's. The
        configured default is no evidence: it counts only when nothing else names a zone. A declared
        name that is not an IANA zone gives the row no SMS hour (callers report it; the API refuses it).
        """
        n = len(emails)
        if n > SMALL_AUDIENCE:
            email, phone = self._contacts_in_bulk(list(emails), list(phones))
        else:
            email, phone = self._contacts(0, emails), self._contacts(1, phones)
        given, valid, own = (np.stack(pair, axis=1) for pair in zip(email[:3], phone[:3], strict=True))
        rows = np.where(own >= 0, own, own[:, ::-1])  # a channel never seen borrows the linked profile
        opted = np.where(own >= 0, self._opted[np.maximum(own, 0), np.arange(2)[None, :]], False)
        optout_reason = np.where(opted, self._optout_reason[np.maximum(own, 0), np.arange(2)[None, :]], "")
        person = np.where(own[:, 0] >= 0, own[:, 0], own[:, 1])

        subscriber_id = np.empty(n, dtype=object)
        known = person >= 0
        subscriber_id[known] = self._ids[person[known]]
        new_ids = np.where(
            valid[:, 0], email.new_id, phone.new_id
        )  # a new person's: the e-mail's, else the phone's
        subscriber_id[~known] = np.where(valid[~known].any(axis=1), new_ids[~known], None)

        phone_tz = phone.zone
        declared, bad_zone = local_time.declared_zones(timezones, n)
        timezone = np.where(known, self._zone[np.maximum(person, 0)], None)
        tz_source = np.where(known, self._zone_source[np.maximum(person, 0)], None)
        untrusted = ~known | (tz_source == "default")
        use_declared = untrusted & pd.notna(declared)
        timezone = np.where(use_declared, declared, timezone)
        tz_source = np.where(use_declared, "declared", tz_source)
        use_phone = untrusted & ~use_declared & pd.notna(phone_tz)
        timezone = np.where(use_phone, phone_tz, timezone)
        tz_source = np.where(use_phone, "phone", tz_source)
        default = self.settings.data.default_timezone
        tz_source = np.where(pd.isna(timezone), "default", tz_source)
        timezone = np.where(pd.isna(timezone), default, timezone)
        state = phone.state
        sms_zones = self._sms_zones(rows, timezone, tz_source, declared, phone.zones, bad_zone)

        pattern = np.empty((n, 2), dtype=object)
        cohort = self._cohort_index(cohort_keys(timezone, tz_source))
        cold = np.where(cohort >= 0, "new subscriber: cohort prior", "new subscriber: population prior")
        for c in range(len(S.CHANNELS)):
            src = self._pattern_source[c]
            pattern[:, c] = np.where(
                own[:, c] >= 0,
                src[np.maximum(own[:, c], 0)],
                np.where(rows[:, c] >= 0, "linked profile", cold),
            )
        return Audience(
            subscriber_id=subscriber_id,
            rows=rows,
            has=valid & ~opted,
            invalid=given & ~valid,
            opted_out=opted,
            timezone=timezone.astype(object),
            tz_source=tz_source.astype(object),
            state=state,
            cohort=cohort,
            pattern=pattern,
            sms_zones=sms_zones,
            optout_reason=optout_reason.astype(object),
        )

    def _sms_zones(self, rows, timezone, tz_source, declared, phone_zones, bad_zone) -> np.ndarray:
        """`Audience.sms_zones`: the declared zone, the number's zones, the zones of the profiles used and
        the pattern zone, each unless it is only the configured default; the default alone otherwise."""
        profile_zones = []
        for c in range(len(S.CHANNELS)):
            r = np.maximum(rows[:, c], 0)
            evidence = (rows[:, c] >= 0) & (self._zone_source[r] != "default")
            profile_zones.append(np.where(evidence, self._zone[r], None))
        own = np.where(tz_source != "default", timezone, None)
        zones = zone_sets(declared, phone_zones, own, *profile_zones)
        zones = np.where(pd.isna(zones), timezone, zones)
        return np.where(bad_zone, None, zones).astype(object)

    def _contacts(self, c: int, values: Sequence) -> ContactColumns:
        """`_contact_columns` for channel c, memoised per distinct contact for calls of up to SMALL_AUDIENCE.

        Each contact's result depends on nothing but the contact (and this snapshot, salt and
        settings), so a memo returns exactly what the vectorised code would. Contacts not in the memo
        are resolved on plain values (`contact_scalars`, the same answers) up to SCALAR_CONTACTS of
        them: a subscriber met for the first time then costs ~0.1 ms instead of the ~8 ms of fixed cost
        of the vectorised path's pandas calls. Large calls (batch plans) skip both.
        """
        values = list(values)
        if len(values) > SMALL_AUDIENCE:
            return self._contact_columns(c, values)
        if self.settings.salt() != self._memo_salt:  # the hashes change with the salt
            self._contact_memo, self._memo_salt = [{}, {}], self.settings.salt()
        memo = self._contact_memo[c]
        try:
            keys = [_contact_key(v) for v in values]
            found = {k: memo.get(k) for k in keys}
        except TypeError:  # an unhashable value: compute without the memo
            return self._contact_columns(c, values)
        todo = [k for k, row in found.items() if row is None]
        if todo:
            new = [None if k is None else k[1] for k in todo]
            if len(new) <= SCALAR_CONTACTS and contact_scalars.takes(new):
                rows = self._scalar_rows(c, new)
            else:
                rows = zip(*self._contact_columns(c, new), strict=True)
            if len(memo) + len(todo) > MEMO_LIMIT:
                memo.clear()
            for k, row in zip(todo, rows, strict=True):
                found[k] = memo[k] = row
        rows = [found[k] for k in keys]
        return ContactColumns(
            *(np.array([r[j] for r in rows], dtype=t) for j, t in enumerate(_CONTACT_DTYPES))
        )

    def _scalar_rows(self, c: int, values: list[str | None]) -> list[tuple]:
        """`_contact_columns` of channel c as rows, computed one contact at a time (`contact_scalars`)."""
        salt, region = self.settings.salt(), self.settings.data.default_region
        return contact_scalars.rows(c, values, self._hash_lookup[c], salt, region)

    def _contacts_in_bulk(self, emails: list, phones_: list) -> tuple[ContactColumns, ContactColumns]:
        """Both channels' `_contact_columns`, on every core for large audiences.

        A contact's columns depend on nothing but the contact, so chunks of both columns are resolved in
        forked workers (`forking.map_in_forks`: they inherit this snapshot's address index rather than
        copy it). Only the timezone rule of `timezones_from_phones` (a number takes the zone of the
        first number sharing its prefix) spans the whole column: it is applied here, to the gathered
        numbers and the zones their parses gave. Where forking is not safe, the same, in this process.
        """
        workers = forking.available_cores()
        parts = None
        if len(emails) >= PARALLEL_CONTACTS:
            per_channel = workers * forking.CHUNKS_PER_WORKER
            jobs = [(1, part) for part in forking.chunks(phones_, per_channel)]
            jobs += [(0, part) for part in forking.chunks(emails, per_channel)]
            _FORKED["index"] = self
            try:
                parts = forking.map_in_forks(_columns_job, jobs, workers, initializer=phones._start_worker)
            finally:
                _FORKED.clear()
        if parts is None:
            return self._contact_columns(0, emails), self._contact_columns(1, phones_)
        out = []
        for c in (0, 1):
            mine = [part for (channel, _), part in zip(jobs, parts, strict=True) if channel == c]
            columns = ContactColumns(
                *(np.concatenate(parts) for parts in zip(*(m[0] for m in mine), strict=True))
            )
            if c == 1:
                norm = pd.concat([m[1] for m in mine], ignore_index=True)
                parsed = {k: v for m in mine for k, v in m[2].items()}
                columns = _with_zones(columns, norm, parsed)
            out.append(columns)
        return out[0], out[1]

    def _contact_columns(self, c: int, values: list) -> ContactColumns:
        """`ContactColumns` of channel c's contacts, vectorised."""
        columns, norm, parsed = self._columns(c, values)
        return _with_zones(columns, norm, parsed) if c == 1 else columns

    def _columns(
        self, c: int, values: list, workers: int | None = None
    ) -> tuple[ContactColumns, pd.Series, dict]:
        """`_contact_columns` without the phones' timezones, plus what they are made from: the normalised
        contacts and the zones of the numbers parsed (E.164 -> zone)."""
        name = S.CHANNELS[c]
        given = _given(values)
        raw = pd.Series(values, dtype=object).where(given, None)
        salt = self.settings.salt()
        parsed: dict = {}
        if c == 0:
            norm = identity.normalise_emails(raw)
            hashes = identity.hash_values(norm, salt)
        else:
            norm, hashes, parsed = self._phones(raw, salt, workers)
        valid = norm.notna().to_numpy()
        own = self._row_of_hash[name].reindex(hashes.fillna("").to_numpy()).fillna(-1).to_numpy(np.int64)
        new_id = np.full(len(values), None, dtype=object)
        if valid.any():
            keys = [f"{name}:{v}" for v in norm[valid].to_numpy(dtype=object)]
            new_id[valid] = identity.hash_values(pd.Series(keys, dtype=object), salt).to_numpy()
        zone = state = zones = np.full(len(values), None, dtype=object)
        if c == 1:
            state = state_for_phones(norm).to_numpy(dtype=object)
        return ContactColumns(given, valid, own, new_id, zone, state, zones), norm, parsed

    def _phones(
        self, raw: pd.Series, salt: str, workers: int | None = None
    ) -> tuple[pd.Series, pd.Series, dict]:
        """(E.164, its salted hash) of each phone, <NA> when unusable, and the zones of the numbers parsed.

        The same answers as `identity.normalise_phones` and `identity.hash_values` (and, through
        `phones.zones_for_e164`, `local_time.timezones_from_phones`), for less: parsing is the slow step
        (~20 us a number), so
        - a number whose cheap canonical text hashes to a snapshot address *is* that valid E.164 number
          (the snapshot holds only normalised ones) and is not parsed: a million-row audience of known
          people parses almost nothing;
        - every other distinct number is parsed once, on every core when there are many
          (`phones.parse_phones`), and that parse also gives its timezone;
        - the hash of the canonical text is reused wherever the E.164 form is the same text.
        """
        region = self.settings.data.default_region
        canonical = identity.canonical_phones(raw, region)
        hashed = identity.hash_values(canonical, salt)
        rows = self._row_of_hash[S.SMS].reindex(hashed.fillna("").to_numpy())
        known = rows.notna().to_numpy() & (rows.fillna(-1).to_numpy() >= 0)
        norm = canonical.where(known)
        rest = ~known & raw.notna().to_numpy()
        parsed: dict[str, str | None] = {}
        if rest.any():
            codes, texts = pd.factorize(canonical[rest], use_na_sentinel=True)
            e164, zones = phones.parse_phones(texts.to_numpy(dtype=object), region, workers)
            done = pd.array(e164, dtype="string")
            norm[rest] = done.take(codes, allow_fill=True)
            parsed = {e: z for e, z in zip(e164, zones, strict=True) if e is not None}
        same = (norm == canonical).fillna(False).to_numpy(dtype=bool)
        hashes = hashed.where(same)
        redo = ~same & norm.notna().to_numpy()
        if redo.any():
            hashes[redo] = identity.hash_values(norm[redo], salt).to_numpy()
        return norm, hashes, parsed

    def _cohort_index(self, keys: np.ndarray) -> np.ndarray:
        if len(keys) > SMALL_AUDIENCE:
            return self._profiles.cohort_index(keys)
        return np.array([self._cohort_of.get(k, -1) for k in keys.tolist()], dtype=np.intp)


_FORKED: dict = {}  # the index whose contacts forked workers resolve (set only while they run)


def _columns_job(job: tuple[int, list]) -> tuple[ContactColumns, pd.Series | None, dict]:
    """In a forked worker: `ContactIndex._columns` of one chunk, parsing in this worker only (the normalised
    e-mails stay here: only the phones' are needed back, for their timezones)."""
    channel, values = job
    columns, norm, parsed = _FORKED["index"]._columns(channel, values, workers=1)
    return columns, (norm if channel == 1 else None), parsed


def _given(values: Sequence[str | None]) -> np.ndarray:
    s = pd.Series(list(values), dtype=object)
    return (s.notna() & (s.astype(str).str.strip() != "") & (s.astype(str).str.lower() != "nan")).to_numpy()


_CONTACT_DTYPES = (bool, bool, np.int64, object, object, object, object)  # of ContactColumns' fields


def _with_zones(columns: ContactColumns, norm: pd.Series, parsed: dict) -> ContactColumns:
    """Phones: the number's timezone and every zone it may be in, from the normalised numbers and the
    zones their parses gave (a column-wide rule: see `phones.zones_for_e164`)."""
    zone = phones.zones_for_e164(norm, parsed).to_numpy(dtype=object)
    return columns._replace(zone=zone, zones=local_time.phone_zone_sets(norm, zone).to_numpy(dtype=object))


def _contact_key(value: object) -> tuple | None:
    """Memo key of a contact: None for missing (None or NaN: both mean no contact), else (type, value)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return (type(value), value)
