"""The one predictor behind the HTTP API, `sendtime predict` and the batch plan.

It holds a pinned champion (a native LightGBM booster) and the profile snapshot it was trained with,
resolves contacts to profiles through the snapshot's `ContactIndex`, and scores subscriber x channel x
candidate-hour grids in one vectorised pass.
"""

from __future__ import annotations

import contextlib
import functools
import queue
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd

from sendtime import forking
from sendtime.configs.settings import Settings
from sendtime.features import local_time
from sendtime.features.model_features import FEATURES, Rows, feature_matrix, gather_rows
from sendtime.features.profiles import Profiles
from sendtime.serving import contacts as contact_module
from sendtime.serving.contacts import MEMO_LIMIT, Audience, ContactIndex
from sendtime.training import hour_guard
from sendtime.training.profile_only import booster_from_string

CHUNK_CELLS = 400_000  # feature rows per predict call: bounds memory on million-row audiences
TOP_CHUNK_ROWS = 20_000  # people per chunk of `score_top` (their [rows, 2, 168] profile arrays: ~50 MB)
PARALLEL_ROWS = 20_000  # below this many feature rows LightGBM predicts on one thread: same numbers, and
#                         the thread start-up of a parallel predict costs more than tiny inputs take


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
        # channels whose hours the profile ranks (the version's hour guard, training/hour_guard.py)
        self._profile_hours = hour_guard.guarded_channels(self.meta.get(hour_guard.TAG))
        self.contacts = ContactIndex(profiles, settings)
        self._grid_memo: dict = {}  # per (window, timezone) local hours; thread-safe without locks

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
            hour_guard.TAG: hour_guard.parse(champ.tags.get(hour_guard.TAG)),
        }
        return cls(champ.booster, profiles, settings, champ.version, meta)

    def resolve(
        self,
        emails: Sequence[str | None],
        phones: Sequence[str | None],
        timezones: Sequence[str | None] | None = None,
    ) -> Audience:
        """`ContactIndex.resolve`: profiles, zones and SMS constraints of each (email, phone[, timezone])."""
        return self.contacts.resolve(emails, phones, timezones)

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
        if len(zones) > contact_module.SMALL_AUDIENCE or pd.isna(zones).any():
            codes, distinct = pd.factorize(pd.Series(audience.timezone, dtype=object))
            grid = local_time.local_hour_of_week_grid(hour_starts, np.asarray(distinct, dtype=object))
            return grid[codes]
        window = hour_starts if isinstance(hour_starts, pd.DatetimeIndex) else pd.DatetimeIndex(hour_starts)
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

            starts = tqdm(starts, desc="scoring", unit="chunk", disable=None)
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
        """The served score at cells (row idx of `g`, channel, local hour-of-week): the model's
        probability, tie-broken by the profile's rank, hours ranked by the profile on the channels the
        version's hour guard gave it (`hour_guard.served_scores`).
        `threads`: LightGBM's (default: the training setting for large inputs); the same numbers either way."""
        X = feature_matrix(g, self.profiles, idx, channel, how)
        if threads is None:
            threads = self.settings.training.lgbm.get("num_threads", 2) if len(X) >= PARALLEL_ROWS else 1
        guarded = self._profile_hours[channel] if self._profile_hours.any() else None
        with self._a_booster() as booster:
            return hour_guard.served_scores(
                lambda Z: booster.predict(Z, num_threads=threads), X, g.best[idx, channel], guarded
            )

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

        bar = tqdm(total=len(starts), desc=progress, unit="chunk", disable=None)
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
