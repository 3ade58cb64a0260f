"""The one predictor behind the HTTP API, `sendtime predict` and the batch plan.

It holds a pinned champion (a native LightGBM booster) and the profile snapshot it was trained with,
resolves contacts to profiles (hashing them exactly as training did), and scores subscriber x channel x
candidate-hour grids in one vectorised pass. Unknown contacts are never an error: they get the linked
profile, their cohort (timezone from the phone number) or the population.
"""

from __future__ import annotations

import contextlib
import functools
import queue
from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from sendtime import forking
from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features import identity, local_time, phones
from sendtime.features.model_features import FEATURES, Rows, feature_matrix, gather_rows
from sendtime.features.priors import cohort_keys
from sendtime.features.profiles import Profiles
from sendtime.features.us_area_codes import state_for_phones
from sendtime.serving.quiet_hours import zone_sets
from sendtime.training.profile_only import booster_from_string

CHUNK_CELLS = 400_000  # feature rows per predict call: bounds memory on million-row audiences
TIE_BREAK = 1e-3
RANK_COLUMN = FEATURES.index("response_rank")
# Latency of small calls (the HTTP API): none of these changes a number, only how fast it comes.
SMALL_AUDIENCE = 5_000  # up to this many contacts a call, per-contact resolution is memoised (see _contacts)
MEMO_LIMIT = 50_000  # memoised contacts per channel (and timezone x window grids) before a memo starts over
TOP_CHUNK_ROWS = 20_000  # people per chunk of `score_top` (their [rows, 2, 168] profile arrays: ~50 MB)
PARALLEL_CONTACTS = 50_000  # audience rows from which contacts are resolved on every core (forked workers)
PARALLEL_ROWS = 20_000  # below this many feature rows LightGBM predicts on one thread: same numbers, and
#                         the thread start-up of a parallel predict costs more than tiny inputs take


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


class Predictor:
    def __init__(
        self,
        booster: lgb.Booster,
        profiles: Profiles,
        settings: Settings,
        model_version: str = "local",
        meta: dict | None = None,
    ) -> None:
        if list(booster.feature_name()) != list(FEATURES):
            raise ValueError(
                f"model version {model_version} was trained with features {booster.feature_name()}, but this sendtime "
                f"computes {FEATURES}: train a new version with `sendtime train`"
            )
        self.booster = booster
        self._idle_boosters: queue.SimpleQueue = queue.SimpleQueue()  # see `_a_booster`
        self._idle_boosters.put(booster)
        self.profiles = profiles
        self.settings = settings
        self.model_version = str(model_version)
        self.meta = dict(meta or {})
        table = profiles.table
        self._row_of_id = pd.Index(table[S.SUBSCRIBER_ID])
        addr = profiles.addresses
        self._row_of_hash = {
            c: pd.Series(
                self._row_of_id.get_indexer(addr.loc[addr[S.CHANNEL] == c, S.SUBSCRIBER_ID]),
                index=addr.loc[addr[S.CHANNEL] == c, S.ADDRESS_HASH].to_numpy(),
            )
            for c in S.CHANNELS
        }
        self._opted = np.stack([table[f"{c}_opted_out"].to_numpy(bool) for c in S.CHANNELS], axis=1)
        self._optout_reason = _optout_reasons(table, self._opted)
        # profile columns resolve() reads, taken out of the frame once
        self._ids = table[S.SUBSCRIBER_ID].to_numpy()
        self._zone = table["timezone"].to_numpy(dtype=object)
        self._zone_source = table[S.TZ_SOURCE].to_numpy(dtype=object)
        self._pattern_source = [table[f"{c}_pattern_source"].to_numpy(dtype=object) for c in S.CHANNELS]
        self._cohort_of = {name: i for i, name in enumerate(profiles.cohorts)}
        # memos of pure per-contact and per-(window, timezone) results; thread-safe without locks
        self._contact_memo: list[dict] = [{}, {}]
        self._grid_memo: dict = {}
        self._memo_salt = settings.salt()

    @classmethod
    def from_registry(cls, settings: Settings, version: str | None = None) -> Predictor:
        """Load a pinned registered version (default: what `champion` points to now) and its snapshot."""
        from sendtime.training import registry

        registry.configure_mlflow(settings.training.experiment)
        champ = registry.load_version(settings.training.registered_model, version)
        profiles = Profiles.load(champ.snapshot_dir)
        meta = {
            "model_version": champ.version,
            "run_id": champ.run_id,
            "kind": champ.tags.get("kind"),
            "model_kind": champ.tags.get("model_kind", "lightgbm"),
            "trained_at": champ.tags.get("trained_at"),
            "data_span": list(profiles.data_span),
            "profiles_as_of": profiles.as_of.isoformat(),
            "subscribers": len(profiles),
        }
        return cls(champ.booster, profiles, settings, champ.version, meta)

    # ------------------------------------------------------------------------------------ resolution
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
        given, valid, own = (np.stack([email[k], phone[k]], axis=1) for k in range(3))
        rows = np.where(own >= 0, own, own[:, ::-1])  # a channel never seen borrows the linked profile
        opted = np.where(own >= 0, self._opted[np.maximum(own, 0), np.arange(2)[None, :]], False)
        optout_reason = np.where(opted, self._optout_reason[np.maximum(own, 0), np.arange(2)[None, :]], "")
        person = np.where(own[:, 0] >= 0, own[:, 0], own[:, 1])

        subscriber_id = np.empty(n, dtype=object)
        known = person >= 0
        subscriber_id[known] = self._ids[person[known]]
        new_ids = np.where(
            valid[:, 0], email[3], phone[3]
        )  # a new person's id: hash of the e-mail, else the phone
        subscriber_id[~known] = np.where(valid[~known].any(axis=1), new_ids[~known], None)

        phone_tz = phone[4]
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
        state = phone[5]
        sms_zones = self._sms_zones(rows, timezone, tz_source, declared, phone[6], bad_zone)

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
            subscriber_id,
            rows,
            valid & ~opted,
            given & ~valid,
            opted,
            timezone.astype(object),
            tz_source.astype(object),
            state,
            cohort,
            pattern,
            sms_zones,
            optout_reason.astype(object),
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

    def _contacts(self, c: int, values: Sequence) -> list[np.ndarray]:
        """`_contact_columns` for channel c, memoised per distinct contact for calls of up to SMALL_AUDIENCE.

        Each contact's result depends on nothing but the contact (and this predictor's snapshot, salt and
        settings), so a memo returns exactly what the vectorised code would; it spares the API the fixed
        cost of some thirty pandas calls per request. Large calls (batch plans) skip it.
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
            columns = self._contact_columns(c, [None if k is None else k[1] for k in todo])
            if len(memo) + len(todo) > MEMO_LIMIT:
                memo.clear()
            for k, row in zip(todo, zip(*columns, strict=True), strict=True):
                found[k] = memo[k] = row
        rows = [found[k] for k in keys]
        return [np.array([r[j] for r in rows], dtype=dtype) for j, dtype in enumerate(_CONTACT_DTYPES)]

    def _contacts_in_bulk(self, emails: list, phones_: list) -> tuple[list[np.ndarray], list[np.ndarray]]:
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
            _FORKED["predictor"] = self
            try:
                parts = forking.map_in_forks(_columns_job, jobs, workers, initializer=phones._start_worker)
            finally:
                _FORKED.clear()
        if parts is None:
            return self._contact_columns(0, emails), self._contact_columns(1, phones_)
        out = []
        for c in (0, 1):
            mine = [part for (channel, _), part in zip(jobs, parts, strict=True) if channel == c]
            columns = [np.concatenate([m[0][j] for m in mine]) for j in range(len(_CONTACT_DTYPES))]
            if c == 1:
                norm = pd.concat([m[1] for m in mine], ignore_index=True)
                parsed = {k: v for m in mine for k, v in m[2].items()}
                columns[4] = phones.zones_for_e164(norm, parsed).to_numpy(dtype=object)
                columns[6] = local_time.phone_zone_sets(norm, columns[4]).to_numpy(dtype=object)
            out.append(columns)
        return out[0], out[1]

    def _contact_columns(self, c: int, values: list) -> list[np.ndarray]:
        """Per contact on channel c (0 e-mail, 1 phone), vectorised: given, valid, own profile row (-1: none),
        the id a new person gets from it, and for phones the number's timezone, US state and every zone
        it may be in (`local_time.phone_zone_sets`) (else None)."""
        columns, norm, parsed = self._columns(c, values)
        if c == 1:
            columns[4] = phones.zones_for_e164(norm, parsed).to_numpy(dtype=object)
            columns[6] = local_time.phone_zone_sets(norm, columns[4]).to_numpy(dtype=object)
        return columns

    def _columns(self, c: int, values: list, workers: int | None = None) -> tuple[list, pd.Series, dict]:
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
        return [given, valid, own, new_id, zone, state, zones], norm, parsed

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
            return self.profiles.cohort_index(keys)
        return np.array([self._cohort_of.get(k, -1) for k in keys.tolist()], dtype=np.intp)

    # --------------------------------------------------------------------------------------- scoring
    def gather(self, audience: Audience) -> Rows:
        """Features' inputs per person, each channel from its own (or linked, or cohort) profile row."""
        p = self.profiles
        kw = dict(
            cohorts=audience.cohort,
            has_email=audience.has[:, 0],
            has_sms=audience.has[:, 1],
            timezone_known=(audience.tz_source != "default").astype(float),
        )
        g0 = gather_rows(p, audience.rows[:, 0], **kw)
        if np.array_equal(audience.rows[:, 0], audience.rows[:, 1]):
            return g0
        g1 = gather_rows(p, audience.rows[:, 1], **kw)
        for name in ("response", "rank", "best", "numbers"):
            getattr(g0, name)[:, 1] = getattr(g1, name)[:, 1]
        return g0

    def local_hours(self, audience: Audience, hour_starts: pd.DatetimeIndex) -> np.ndarray:
        """[n, H] local hour-of-week of every candidate hour, computed once per distinct timezone.

        Small calls memoise each timezone's row per window (the same numbers, without the tz_convert).
        """
        zones = np.asarray(audience.timezone, dtype=object)
        if len(zones) > SMALL_AUDIENCE or pd.isna(zones).any():
            codes, distinct = pd.factorize(pd.Series(audience.timezone, dtype=object))
            grid = local_time.local_hour_of_week_grid(hour_starts, np.asarray(distinct, dtype=object))
            return grid[codes]
        window = pd.DatetimeIndex(hour_starts)
        window = (str(window.dtype), window.asi8.tobytes())
        names = zones.tolist()
        found = {z: self._grid_memo.get((window, z)) for z in names}
        todo = [z for z, row in found.items() if row is None]
        if todo:
            grid = local_time.local_hour_of_week_grid(hour_starts, np.asarray(todo, dtype=object))
            if len(self._grid_memo) + len(todo) > MEMO_LIMIT:
                self._grid_memo.clear()
            for z, row in zip(todo, grid, strict=True):
                found[z] = self._grid_memo[(window, z)] = row
        position = {z: k for k, z in enumerate(found)}
        return np.stack(list(found.values()))[[position[z] for z in names]]

    def score(
        self,
        audience: Audience,
        hour_starts: pd.DatetimeIndex,
        channels: np.ndarray | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """P(click within the label horizon) for every [subscriber, channel, hour]; 0 where not eligible."""
        n, n_hours = len(audience), len(hour_starts)
        eligible = audience.has if channels is None else audience.has & channels
        out = np.zeros((n, 2, n_hours), dtype=np.float32)
        if n == 0 or n_hours == 0 or not eligible.any():
            return out
        how = self.local_hours(audience, hour_starts)
        per_chunk = max(1, CHUNK_CELLS // (2 * n_hours))
        starts = range(0, n, per_chunk)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="scoring", unit="chunk")
        for lo in starts:
            hi = min(n, lo + per_chunk)
            sub = audience if (lo, hi) == (0, n) else audience.take(slice(lo, hi))
            g = self.gather(sub)
            who, ch = np.nonzero(eligible[lo:hi])
            if who.size == 0:
                continue
            pred = self._predict(
                g, np.repeat(who, n_hours), np.repeat(ch, n_hours), how[lo:hi][who].reshape(-1)
            )
            out[lo + who, ch] = pred.reshape(len(who), n_hours)
        return out

    def _predict(
        self, g: Rows, idx: np.ndarray, channel: np.ndarray, how: np.ndarray, threads: int | None = None
    ) -> np.ndarray:
        """The model's probability at cells (row idx of `g`, channel, local hour-of-week), tie-broken.
        `threads`: LightGBM's (default: the training setting for large inputs); the same numbers either way."""
        X = feature_matrix(g, self.profiles, idx, channel, how)
        if threads is None:
            threads = self.settings.training.lgbm.get("num_threads", 2) if len(X) >= PARALLEL_ROWS else 1
        with self._a_booster() as booster:
            pred = booster.predict(X, num_threads=threads)
        # Trees give a step function: many of a person's hours share one probability. Among hours the
        # model cannot tell apart, the profile's own ranking decides (at most a 0.1% nudge).
        return pred * (1.0 + TIE_BREAK * X[:, RANK_COLUMN])

    @contextlib.contextmanager
    def _a_booster(self):
        """A booster no other thread is predicting with. LightGBM's predict writes per-call state into
        the booster it is given (LightGBM issue 6142), so threads scoring at once (chunks of a campaign,
        concurrent API requests) each take their own copy, made from the model text the first time
        two overlap and kept for the next call. The copies predict exactly what the original does."""
        try:
            booster = self._idle_boosters.get_nowait()
        except queue.Empty:
            booster = booster_from_string(self.booster.model_to_string())  # LightGBM or profile-only
        try:
            yield booster
        finally:
            self._idle_boosters.put(booster)

    # ------------------------------------------------------------------------ scoring only what is needed
    @functools.cached_property
    def ranks_hours_like_profile(self) -> bool:
        """Whether, for one person and channel, the model orders the hours exactly as the profile's
        response rank does (see `top_hours`): what makes scoring only the top hours exact."""
        from sendtime.serving.top_hours import model_ranks_like_profile

        return model_ranks_like_profile(self)

    def score_top(
        self,
        audience: Audience,
        hour_starts: pd.DatetimeIndex,
        feasible: np.ndarray,
        k: int,
        extra: np.ndarray | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score each person-channel's k feasible hours of highest profile rank (ties included) and the
        `extra` cells; returns (scores [n, 2, H] float32, -inf where not scored; scored [n, 2, H];
        bound [n, 2]: no unscored feasible hour scores more than this, -inf when none is left).

        The scores are `score`'s, cell for cell. The bound is the lowest of the top-k scores: every
        hour left out ranks below all of them, and the model never scores a lower-ranked hour higher
        (`ranks_hours_like_profile`, which callers check first). A person-channel whose profile data
        could break that (NaN response, negative rates) gets all its feasible hours scored instead.
        """
        n, n_hours = len(audience), len(hour_starts)
        scores = np.full((n, 2, n_hours), -np.inf, dtype=np.float32)
        scored = np.zeros((n, 2, n_hours), dtype=bool)
        bound = np.full((n, 2), -np.inf, dtype=np.float32)
        feasible = np.asarray(feasible, dtype=bool) & audience.has[:, :, None]
        if n == 0 or n_hours == 0 or not feasible.any():
            return scores, scored, bound
        how = self.local_hours(audience, hour_starts)

        def chunk(lo: int) -> None:
            hi = min(n, lo + TOP_CHUNK_ROWS)
            feas = feasible[lo:hi]
            if not feas.any():
                return
            g = self.gather(audience if (lo, hi) == (0, n) else audience.take(slice(lo, hi)))
            h = how[lo:hi]
            rank = g.rank[np.arange(hi - lo)[:, None, None], np.arange(2)[None, :, None], h[:, None, :]]
            top = _top_cells(np.where(feas, rank, -1.0), feas, k)
            top |= feas & ~_orderly(g)[:, :, None]
            want = top if extra is None else top | (feas & extra[lo:hi])
            i, c, j = np.nonzero(want)
            scores[lo + i, c, j] = self._predict(g, i, c, h[i, j], threads=1)
            scored[lo:hi] = want
            lowest = np.where(top, scores[lo:hi], np.inf).min(axis=2)
            bound[lo:hi] = np.where((feas & ~want).any(axis=2), lowest, -np.inf)

        _in_threads(chunk, range(0, n, TOP_CHUNK_ROWS), "scoring top hours" if progress else None)
        return scores, scored, bound

    def score_cells(
        self,
        audience: Audience,
        hour_starts: pd.DatetimeIndex,
        row: np.ndarray,
        channel: np.ndarray,
        hour: np.ndarray,
    ) -> np.ndarray:
        """`score`'s value at the given (row, channel, hour index) cells only: float32 [len(row)]."""
        row, channel, hour = (np.asarray(a, dtype=np.int64) for a in (row, channel, hour))
        out = np.empty(len(row), dtype=np.float32)
        order = np.argsort(row, kind="stable")
        rows, first = np.unique(row[order], return_index=True)

        def chunk(a: int) -> None:
            b = min(len(rows), a + TOP_CHUNK_ROWS)
            sub = audience.take(rows[a:b])
            cells = order[first[a] : first[b] if b < len(rows) else len(row)]
            local = np.searchsorted(rows[a:b], row[cells])
            how = self.local_hours(sub, hour_starts)
            out[cells] = self._predict(
                self.gather(sub), local, channel[cells], how[local, hour[cells]], threads=1
            )

        _in_threads(chunk, range(0, len(rows), TOP_CHUNK_ROWS), None)
        return out


def _in_threads(work, starts: range, progress: str | None) -> None:
    """`work(lo)` for every chunk start, on one thread per core: each chunk gathers, builds features and
    predicts on one LightGBM thread, so one chunk's NumPy work overlaps another's trees (both release
    the GIL), which beats one chunk at a time on all LightGBM threads. Chunks write disjoint rows."""
    from concurrent.futures import ThreadPoolExecutor

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts), desc=progress, unit="chunk")
    workers = min(forking.available_cores(), len(starts))
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        for _ in pool.map(work, starts):
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()


def _top_cells(rank: np.ndarray, feasible: np.ndarray, k: int) -> np.ndarray:
    """bool [m, 2, H]: feasible cells whose rank is among the k highest of their row and channel
    (rank -1 where infeasible). Equal ranks (the same local hour twice in the window) go in together."""
    n_hours = rank.shape[2]
    if k >= n_hours:
        return feasible.copy()
    kth = np.partition(rank, n_hours - k, axis=2)[:, :, n_hours - k]
    return feasible & (rank >= kth[:, :, None])


def _orderly(g: Rows) -> np.ndarray:
    """bool [m, 2]: the profile data keep every hour feature rising with the response rank (no NaN
    response, rates >= 0 or NaN); where not, the caller scores every hour."""
    finite = ~np.isnan(g.response).any(axis=2)
    rates = g.numbers[:, :, :2]
    return finite & ~(rates < 0).any(axis=2)


_FORKED: dict = {}  # the predictor whose contacts forked workers resolve (set only while they run)


def _columns_job(job: tuple[int, list]) -> tuple[list, pd.Series | None, dict]:
    """In a forked worker: `Predictor._columns` of one chunk, parsing in this worker only (the normalised
    e-mails stay here: only the phones' are needed back, for their timezones)."""
    channel, values = job
    columns, norm, parsed = _FORKED["predictor"]._columns(channel, values, workers=1)
    return columns, (norm if channel == 1 else None), parsed


def _given(values: Sequence[str | None]) -> np.ndarray:
    s = pd.Series(list(values), dtype=object)
    return (s.notna() & (s.astype(str).str.strip() != "") & (s.astype(str).str.lower() != "nan")).to_numpy()


_CONTACT_DTYPES = (bool, bool, np.int64, object, object, object, object)  # Predictor._contact_columns


def _contact_key(value: object) -> tuple | None:
    """Memo key of a contact: None for missing (None or NaN: both mean no contact), else (type, value)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    return (type(value), value)
