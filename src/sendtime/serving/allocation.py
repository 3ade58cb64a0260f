"""Global optimisation for batch campaign plans (`sendtime schedule`): SMS budget, send-rate caps, holdout.

Per-row decisions (`policy.decide`) are optimal one subscriber at a time, but a campaign has shared
limits: at most `--max-sms` texts, at most `--max-per-hour` sends per clock hour on a channel. Giving
those scarce resources to whoever comes first in the file throws value away; these functions hand them
to the rows that gain most, as pure NumPy/SciPy functions on score arrays:

- `allocate_sms_budget`: exact top-k of the SMS gain over e-mail;
- `assign_hours`: the optimal hour for every row under per-hour capacities (a transportation problem),
  solved exactly with hour prices, fast enough for a million rows;
- `plan_channels_and_hours`: the two together, with fallbacks, as the scheduler uses them;
- `holdout_mask`: a reproducible control group keyed by subscriber.

Conventions: channel 0 = e-mail, 1 = SMS (`schema.CHANNELS`); a value of `-inf` marks an infeasible
cell (no contact, SMS quiet hours, outside the window); -1 means "no channel" or "no hour".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

NO_CHANNEL = -1
NO_HOUR = -1
UNLIMITED = np.iinfo(np.int64).max  # capacity meaning "no cap"

# why a row of a plan has no channel (PlanResult.status); PLACED rows have a channel and an hour
PLACED, NO_CONTACT, SMS_BUDGET_EXHAUSTED, SMS_NOT_WORTH_COST, CAPACITY_FULL = 0, 1, 2, 3, 4
STATUS_TEXT = {
    PLACED: "placed",
    NO_CONTACT: "no contact",
    SMS_BUDGET_EXHAUSTED: "sms budget exhausted",
    SMS_NOT_WORTH_COST: "sms gain below its cost",
    CAPACITY_FULL: "send-rate cap full",
}

_CHUNK_CELLS = 1 << 22  # cells per block in row-wise passes, to bound temporary memory (~32 MB)
_CANDIDATES = 128  # rows kept per (hour, other hour) pair by the exact finisher
_MAX_ROUNDS = 200  # price rounds before the exact finisher takes over


# --- 1. SMS budget -----------------------------------------------------------------------------


def sms_gain(
    best_email: np.ndarray, best_sms: np.ndarray, sms_cost: float = 0.0, click_value: float = 1.0
) -> np.ndarray:
    """What sending SMS instead of the alternative is worth, per row (-inf where SMS is infeasible).

    The alternative is the best e-mail cell; for a row without e-mail (SMS-only) it is not sending,
    worth 0, so SMS-only rows compete for the budget on the same footing as everyone else.
    """
    email, sms = _as_vector("best_email", best_email), _as_vector("best_sms", best_sms)
    if email.shape != sms.shape:
        raise ValueError(f"best_email and best_sms: shapes differ, {email.shape} vs {sms.shape}")
    if not click_value > 0:
        raise ValueError(f"click_value must be positive, got {click_value}")
    alternative = np.where(np.isfinite(email), email, 0.0)
    with np.errstate(invalid="ignore"):
        gain = click_value * (sms - alternative) - sms_cost
    return np.where(np.isfinite(sms), gain, -np.inf)


def allocate_sms_budget(
    best_email: np.ndarray,
    best_sms: np.ndarray,
    max_sms: int | None,
    sms_cost: float = 0.0,
    click_value: float = 1.0,
) -> np.ndarray:
    """Channel per row (int8: 0 e-mail, 1 SMS, -1 none) that spends the SMS budget where it gains most.

    Rule: a row's SMS gain is `click_value * (best_sms - best_email) - sms_cost`; for a row with no
    e-mail contact it is `click_value * best_sms - sms_cost`, because its alternative is not sending.
    SMS goes to the rows with the largest positive gains, never more than `max_sms` of them
    (`None`: no budget, every row with a positive gain gets SMS). Ties at the budget's edge go to the
    earlier rows, so the plan is deterministic. Every other row gets e-mail if it has e-mail, else
    nothing (-1: an SMS-only row whose gain is not positive, or that the budget could not fund).

    Selecting the top k gains is exactly optimal for the budget alone: the rows' gains add up and
    one SMS is one unit of budget whatever the row.
    """
    gain = sms_gain(best_email, best_sms, sms_cost, click_value)
    has_email = np.isfinite(_as_vector("best_email", best_email))
    wanted = np.flatnonzero(gain > 0)
    if max_sms is not None:
        if max_sms < 0:
            raise ValueError(f"max_sms must be >= 0 or None, got {max_sms}")
        wanted = _top_k(wanted, gain[wanted], int(max_sms))
    channel = np.where(has_email, 0, NO_CHANNEL).astype(np.int8)
    channel[wanted] = 1
    return channel


def _top_k(rows: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """The k rows of highest score (rows ascending); ties at the k-th score go to the earlier rows."""
    if k >= len(rows):
        return rows
    if k == 0:
        return rows[:0]
    kth = score[np.argpartition(-score, k - 1)[k - 1]]
    above = rows[score > kth]
    tied = rows[score == kth][: k - len(above)]
    return np.sort(np.concatenate([above, tied]))


# --- 2. send-rate capacity ---------------------------------------------------------------------


@dataclass
class AssignmentResult:
    """An optimal assignment of rows to hours under per-hour capacities."""

    hour: np.ndarray  # int64 [m]: the hour index, -1 when no feasible hour had room
    total_value: float  # sum of value at the chosen hours
    unconstrained_value: float  # each row at its own best hour, as if there were no caps
    cost_of_cap: float  # unconstrained_value - total_value: what the caps cost
    n_unassigned: int  # rows with a feasible hour that stay unsent because the caps are full
    iterations: int  # price rounds
    augmentations: int = 0  # exact shortest-path repairs after the price rounds
    prices: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [H] value of one more slot per hour
    duality_gap: float = 0.0  # dual bound - total_value: 0 up to rounding proves optimality


def assign_hours(value: np.ndarray, capacity: np.ndarray, progress: bool = False) -> AssignmentResult:
    """Maximise the total value of a campaign under per-hour send caps; exact, for millions of rows.

    `value[m, H]`: the expected engagement of each row at each hour on its chosen channel (`-inf`:
    infeasible, never used). `capacity[H]`: sends allowed per hour (`UNLIMITED` = no cap). Each row
    is sent at most once; a row left out is worth 0. Values are meant to be >= 0 (probabilities):
    then a row is left out (-1) only when every feasible hour is full, and when the caps cannot hold
    everyone the rows left out are those whose loss is least. (A row whose every feasible value is
    negative is better not sent, and is left out.)

    Why not first come, first served: a row that is as happy at 09:00 as at 10:00 should leave the
    last 10:00 slot to a row that only responds at 10:00 (`greedy_first_come` does not).

    Method: this is a transportation problem, and its dual has one price per hour: the optimum gives
    every row its best hour at value minus price, with a positive price only on full hours.
    1. Price rounds (a Jacobi auction on hour prices): every over-full hour raises its price just
       enough that only `capacity` rows still prefer it (ties split by row order) and the others move
       to their next best choice. Prices only rise and never pass the smallest equilibrium prices, so
       every row stays at a best choice and an hour with a positive price stays full.
    2. Exact finisher (successive shortest paths on the H-hour graph, Dijkstra with the prices as
       potentials): each remaining excess row goes along the cheapest chain of moves to an hour with
       room or out of the plan; prices are updated so the optimality conditions keep holding.
    When no hour is over-full, primal and dual values match: `duality_gap` (~1e-12) certifies it.
    Each price round costs O(m H); the finisher O(H^2) per excess row left after the rounds.
    """
    v = _as_matrix(value)
    n_hours = v.shape[1]
    cap = _as_capacity(capacity, n_hours)
    scale = float(np.max(np.abs(v[np.isfinite(v)]), initial=1.0))
    tol = 1e-12 * max(scale, 1.0)

    x = _best_choice(v, np.zeros(n_hours))  # n_hours = "out of the plan" (worth 0)
    wants_a_send = x < n_hours
    best_value = _value_at(v, x)
    unconstrained = float(best_value.sum())
    prices = np.zeros(n_hours)
    load = np.bincount(x, minlength=n_hours + 1)[:n_hours]
    with tqdm(desc="capacity", unit="round", disable=not progress) as bar:
        rounds = _price_rounds(v, cap, x, prices, load, tol, bar)
        augmentations = _ShortestPaths(v, cap, x, prices, load).run(bar)

    _fill_free_room(v, cap, x, load)
    hour = np.where(x < n_hours, x, NO_HOUR).astype(np.int64)
    total = float(_value_at(v, x).sum())
    return AssignmentResult(
        hour=hour,
        total_value=total,
        unconstrained_value=unconstrained,
        cost_of_cap=unconstrained - total,
        n_unassigned=int(((hour == NO_HOUR) & wants_a_send).sum()),
        iterations=rounds,
        augmentations=augmentations,
        prices=prices,
        duality_gap=_dual_bound(v, cap, prices) - total,
    )


def greedy_first_come(value: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """The naive plan, for comparison only: rows in input order each take their best hour with room.

    Returns the hour per row (-1 when no feasible hour has room). Vectorised by events: between two
    moments when an hour fills up, every row's best open hour is fixed, so at most H passes are needed.
    """
    v = _as_matrix(value)
    m, n_hours = v.shape
    cap = _as_capacity(capacity, n_hours)
    hour = np.full(m, NO_HOUR, dtype=np.int64)
    closed = cap <= 0
    choice = _best_open(v, closed)
    used = np.zeros(n_hours, dtype=np.int64)
    start = 0
    while start < m:
        rest = choice[start:]
        fills_at = _fill_positions(rest, cap - used, n_hours)
        end = m if fills_at is None else start + fills_at + 1
        hour[start:end] = choice[start:end]
        placed = choice[start:end]
        used += np.bincount(placed[placed >= 0], minlength=n_hours)
        if fills_at is None:
            break
        closed[choice[end - 1]] = True
        start = end
        redo = start + np.flatnonzero(choice[start:] == choice[end - 1])
        choice[redo] = _best_open(v[redo], closed)
    return hour


# --- 3. channels and hours together ------------------------------------------------------------


@dataclass
class PlanResult:
    """A campaign plan: one channel and hour per row, and what the shared limits did to it."""

    channel: np.ndarray  # int8 [n]: 0 e-mail, 1 SMS, -1 none
    hour: np.ndarray  # int64 [n]: hour index, -1 when channel == -1
    expected: np.ndarray  # float [n]: value at the chosen cell, NaN when none
    status: np.ndarray  # int8 [n]: PLACED or why not (see STATUS_TEXT)
    sms_used: int
    budget_note: str
    cost_of_cap: dict[int, float]  # channel -> value lost to that channel's hourly cap
    unassigned: dict[str, int]  # STATUS_TEXT -> rows without a send for that reason
    fallbacks: int = 0  # rows moved to their other channel because their own was full

    def reasons(self) -> np.ndarray:
        """The status of every row as text (object array), for the plan's `reason` column."""
        texts = np.array([STATUS_TEXT[k] for k in sorted(STATUS_TEXT)], dtype=object)
        return texts[self.status.astype(np.int64)]


def plan_channels_and_hours(
    value: np.ndarray,
    max_sms: int | None,
    max_per_hour: Mapping[int, int],
    sms_cost: float = 0.0,
    click_value: float = 1.0,
    progress: bool = False,
    feasible: np.ndarray | None = None,
) -> PlanResult:
    """Channel and hour for every row of a campaign under the SMS budget and the hourly caps.

    `value[n, 2, H]`: expected engagement per (row, channel, hour), `-inf` where infeasible (or pass a
    `feasible[n, 2, H]` mask). `max_per_hour`: channel index -> sends allowed per hour (a channel not
    in it has no cap).
    1. Budget: `allocate_sms_budget` on each row's best feasible values (its gain if uncapped).
    2. Capacity: `assign_hours` per channel among the rows given that channel.
    3. Fallback: a row that no hour of its channel can hold tries its other channel in the room left
       there (an optimal `assign_hours` among those rows): e-mail always, SMS only if its SMS gain
       alone is positive and the budget is not spent (the largest gains first). Rows still left
       out get channel -1 with status CAPACITY_FULL. This is a second pass, not a joint optimum.
    """
    v = _as_grid(value, feasible)
    n, _, n_hours = v.shape
    best = v.max(axis=2) if n_hours else np.full((n, 2), -np.inf)
    channel = allocate_sms_budget(best[:, 0], best[:, 1], max_sms, sms_cost, click_value)
    hour = np.full(n, NO_HOUR, dtype=np.int64)
    status = _initial_status(best, channel, max_sms, sms_cost, click_value)
    caps = {c: _channel_cap(max_per_hour, c, n_hours) for c in (0, 1)}
    cost_of_cap: dict[int, float] = {}
    for c in (0, 1):
        rows = np.flatnonzero(channel == c)
        result = assign_hours(v[rows, c], caps[c], progress=progress)
        hour[rows] = result.hour
        cost_of_cap[c] = result.cost_of_cap
        caps[c] = caps[c] - _used(result.hour, n_hours)
    full = np.flatnonzero((channel >= 0) & (hour == NO_HOUR))
    channel[full], status[full] = NO_CHANNEL, CAPACITY_FULL
    fallbacks = _fallback(v, full, channel, hour, status, caps, best, max_sms, sms_cost, click_value)

    placed = np.flatnonzero(channel >= 0)
    expected = np.full(n, np.nan)
    expected[placed] = v[placed, channel[placed], hour[placed]]
    sms_used = int((channel == 1).sum())
    return PlanResult(
        channel=channel,
        hour=hour,
        expected=expected,
        status=status,
        sms_used=sms_used,
        budget_note=_budget_note(max_sms, sms_used, int((status == SMS_BUDGET_EXHAUSTED).sum())),
        cost_of_cap=cost_of_cap,
        unassigned={STATUS_TEXT[k]: int((status == k).sum()) for k in STATUS_TEXT if k != PLACED},
        fallbacks=fallbacks,
    )


def _initial_status(
    best: np.ndarray, channel: np.ndarray, max_sms: int | None, sms_cost: float, click_value: float
) -> np.ndarray:
    """Why rows the budget step left without a channel have none."""
    status = np.full(len(channel), PLACED, dtype=np.int8)
    none = channel == NO_CHANNEL
    worth = sms_gain(best[:, 0], best[:, 1], sms_cost, click_value) > 0
    status[none & ~np.isfinite(best).any(axis=1)] = NO_CONTACT
    status[none & np.isfinite(best[:, 1]) & ~worth] = SMS_NOT_WORTH_COST
    status[none & worth] = SMS_BUDGET_EXHAUSTED
    return status


def _fallback(
    v: np.ndarray,
    rows: np.ndarray,
    channel: np.ndarray,
    hour: np.ndarray,
    status: np.ndarray,
    room: dict[int, np.ndarray],
    best: np.ndarray,
    max_sms: int | None,
    sms_cost: float,
    click_value: float,
) -> int:
    """Second pass for rows their channel's cap left out (in place); returns how many found a place.

    SMS rows go to e-mail first: that frees budget for e-mail rows that then try SMS.
    """
    moved = 0
    for c in (0, 1):
        was = rows[np.isfinite(best[rows, 1 - c]) & (channel[rows] == NO_CHANNEL)]
        candidates = was[np.isfinite(best[was, c])]
        if c == 1:  # judged as an SMS-only row: its e-mail alternative is gone
            gain = sms_gain(np.full(len(candidates), -np.inf), best[candidates, 1], sms_cost, click_value)
            candidates, gain = candidates[gain > 0], gain[gain > 0]
            if max_sms is not None:
                left = max(int(max_sms) - int((channel == 1).sum()), 0)
                candidates = _top_k(candidates, gain, left)
        if not len(candidates):
            continue
        got = assign_hours(v[candidates, c], np.maximum(room[c], 0)).hour
        ok = got >= 0
        channel[candidates[ok]], hour[candidates[ok]], status[candidates[ok]] = c, got[ok], PLACED
        room[c] = room[c] - _used(got, v.shape[2])
        moved += int(ok.sum())
    return moved


def _budget_note(max_sms: int | None, used: int, unfunded: int) -> str:
    if max_sms is None:
        return f"no sms budget: {used} sms where sms gains most"
    note = f"sms budget {max_sms}: {used} used"
    return note + (f", {unfunded} sms-only rows not funded (sms budget exhausted)" if unfunded else "")


def _channel_cap(max_per_hour: Mapping[int, int], c: int, n_hours: int) -> np.ndarray:
    cap = max_per_hour.get(c)
    if cap is None:
        return np.full(n_hours, UNLIMITED, dtype=np.int64)
    if cap < 0:
        raise ValueError(f"max_per_hour[{c}] must be >= 0, got {cap}")
    return np.full(n_hours, int(cap), dtype=np.int64)


def _used(hour: np.ndarray, n_hours: int) -> np.ndarray:
    return np.bincount(hour[hour >= 0], minlength=n_hours).astype(np.int64)


# --- 4. holdout --------------------------------------------------------------------------------


def holdout_mask(keys: pd.Series, share: float, seed: int) -> np.ndarray:
    """bool per row: True for the control group that gets no send.

    A row is held out when a hash of (seed, key) falls below `share`: the same subscriber is in the
    same group whatever the audience's order and size, and another seed draws another group. The
    key is compared as text, so 123 and "123" are the same subscriber.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share must be in [0, 1], got {share}")
    text = pd.Series(keys, copy=False).astype(str)
    hash_key = hashlib.blake2b(str(int(seed)).encode(), digest_size=8).hexdigest()  # 16 characters
    hashed = pd.util.hash_pandas_object(text, index=False, hash_key=hash_key).to_numpy()
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53) < share


# --- price rounds ------------------------------------------------------------------------------


def _price_rounds(
    v: np.ndarray, cap: np.ndarray, x: np.ndarray, prices: np.ndarray, load: np.ndarray, tol: float, bar
) -> int:
    """Raise the prices of over-full hours until none is over-full or the rounds stop paying off.

    Updates `x`, `prices` and `load` in place and keeps two invariants the finisher relies on: every
    row is at a best choice under the prices, and an hour with a positive price holds >= capacity.
    """
    n_hours = len(cap)
    rounds, best_excess, stalled = 0, np.inf, 0
    while rounds < _MAX_ROUNDS:
        over = np.flatnonzero(load > cap)
        excess = int((load - cap)[over].sum())
        if not excess:
            break
        best_excess, stalled = (excess, 0) if excess < best_excess else (best_excess, stalled + 1)
        if stalled >= 3:
            break
        is_over = np.zeros(n_hours + 1, dtype=bool)
        is_over[over] = True
        rows = np.flatnonzero(is_over[x])
        rows = rows[np.argsort(x[rows], kind="stable")]  # grouped by hour, row order within
        margin = _margins(v, prices, rows, x[rows])
        bounds = np.searchsorted(x[rows], over, side="left"), np.searchsorted(x[rows], over, side="right")
        new_prices, movers = prices.copy(), []
        for h, lo, hi in zip(over, *bounds, strict=True):
            raise_by, leave = _clear(margin[lo:hi], int(cap[h]))
            new_prices[h] += raise_by
            movers.append((h, rows[lo:hi][leave]))
        prices[:] = new_prices
        for h, gone in movers:
            x[gone] = _next_choice(v, prices, gone, h, tol)
        load[:] = np.bincount(x, minlength=n_hours + 1)[:n_hours]
        rounds += 1
        bar.update(1)
        bar.set_postfix(excess=excess)
    return rounds


def _clear(margin: np.ndarray, capacity: int) -> tuple[float, np.ndarray]:
    """How much an over-full hour's price rises, and which of its rows (bool) leave.

    The rise is the (capacity+1)-th largest margin (the row's value here over its next best choice),
    so at most `capacity` rows still strictly prefer the hour; rows tied at that margin are
    indifferent, and the earliest of them fill the hour up to exactly `capacity`.
    """
    n = len(margin)
    rise = float(np.partition(margin, n - capacity - 1)[n - capacity - 1])
    stay = margin > rise
    tied = np.flatnonzero(margin == rise)
    stay[tied[: capacity - int(stay.sum())]] = True
    return rise, ~stay


def _margins(v: np.ndarray, prices: np.ndarray, rows: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Value (net of price) of each row at its hour `at` over its next best choice (or not sending)."""
    out = np.empty(len(rows))
    for s in _blocks(len(rows), v.shape[1]):
        r = v[rows[s]] - prices
        i = np.arange(len(r))
        here = r[i, at[s]]
        r[i, at[s]] = -np.inf
        out[s] = here - np.maximum(r.max(axis=1, initial=-np.inf), 0.0)
    return np.maximum(out, 0.0)


def _next_choice(v: np.ndarray, prices: np.ndarray, rows: np.ndarray, left: int, tol: float) -> np.ndarray:
    """Best choice of rows that were pushed out of hour `left`: they return only if strictly better."""
    n_hours = v.shape[1]
    out = np.empty(len(rows), dtype=np.int64)
    for s in _blocks(len(rows), n_hours):
        r = v[rows[s]] - prices
        here = r[:, left].copy()
        r[:, left] = -np.inf
        choice = r.argmax(axis=1)
        other = r[np.arange(len(r)), choice]
        choice = np.where(other >= 0, choice, n_hours)
        other = np.maximum(other, 0.0)
        out[s] = np.where(here > other + tol, left, choice)
    return out


# --- exact finisher ----------------------------------------------------------------------------


class _ShortestPaths:
    """Successive shortest paths on the hour graph, from a state that meets the optimality conditions.

    Nodes are the H hours plus "out" (index H, price 0, unlimited room). Moving a row from hour a to
    b loses (v_a - p_a) - (v_b - p_b) >= 0; the cheapest such move per pair comes from a short,
    price-free candidate list per hour (the price shift is the same for every row of the pair). Each
    step sends excess from over-full hours along the cheapest chain of moves to an hour with room or
    out, moving every row tied on the chain at once (identical rows are common: cohort priors).
    """

    def __init__(self, v, cap, x, prices, load):
        self.v, self.cap, self.x, self.prices, self.load = v, cap, x, prices, load
        n_hours = len(cap)
        self.n = n_hours + 1
        self.loss = np.full((n_hours, self.n), np.inf)  # cheapest price-free loss per (from, to)
        self.fresh = np.zeros(n_hours, dtype=bool)
        self.cand: dict[int, tuple[np.ndarray, np.ndarray, bool]] = {}
        self.new: dict[int, np.ndarray] = {}

    def run(self, bar) -> int:
        steps = 0
        while (self.load > self.cap).any():
            self._augment()
            steps += 1
            bar.update(1)
        return steps

    def _augment(self) -> None:
        n_hours = self.n - 1
        p = np.append(self.prices, 0.0)
        source = np.append(self.load > self.cap, False)
        sink = np.append(self.load < self.cap, True)
        dist = np.where(source, 0.0, np.inf)
        pred = np.full(self.n, -1)
        done = np.zeros(self.n, dtype=bool)
        while True:
            a = int(np.argmin(np.where(done, np.inf, dist)))
            if not np.isfinite(dist[a]):  # cannot happen: every full hour has a move out of the plan
                raise RuntimeError("assign_hours: no way to relieve an over-full hour")
            done[a] = True
            if sink[a]:
                break
            reach = dist[a] + np.maximum(self._loss_row(a) - p[a] + p, 0.0)
            better = (reach < dist) & ~done
            dist[better], pred[better] = reach[better], a
        end, path = a, [a]
        while not source[path[-1]]:
            path.append(int(pred[path[-1]]))
        path.reverse()
        self.prices += np.where(done[:n_hours], dist[end] - dist[:n_hours], 0.0)
        self._move(path)

    def _move(self, path: list[int]) -> None:
        """Move along the path as many tied rows as the excess, the room and the ties allow."""
        n_hours = self.n - 1
        head, tail = path[0], path[-1]
        units = int(self.load[head] - self.cap[head])
        if tail < n_hours:
            units = min(units, int(self.cap[tail] - self.load[tail]))
        groups = [self._tied(a, b) for a, b in zip(path[:-1], path[1:], strict=True)]
        units = min([units, *(len(g) for g in groups)])
        for (a, b), g in zip(zip(path[:-1], path[1:], strict=True), groups, strict=True):
            self.x[g[:units]] = b
            self.fresh[a] = False
            if b < n_hours:
                self.new[b] = np.concatenate([self.new.get(b, np.zeros(0, dtype=np.int64)), g[:units]])
                self.fresh[b] = False
        self.load[head] -= units
        if tail < n_hours:
            self.load[tail] += units

    def _tied(self, a: int, b: int) -> np.ndarray:
        """Rows now at hour a whose loss moving to b equals the cheapest (row order)."""
        rows = np.unique(np.concatenate([self.cand[a][0][:, b], self.new.get(a, np.zeros(0, np.int64))]))
        rows = rows[self.x[rows] == a]
        return rows[self._keys(rows, a)[:, b] == self.loss[a, b]]

    def _loss_row(self, a: int) -> np.ndarray:
        if not self.fresh[a]:
            self.loss[a] = self._cheapest(a)
            self.fresh[a] = True
        return self.loss[a]

    def _cheapest(self, a: int) -> np.ndarray:
        if a not in self.cand:
            self._build(a)
        rows, keys, complete = self.cand[a]
        valid = self.x[rows] == a
        if not complete and not valid.any(axis=0).all():
            self._build(a)
            rows, keys, complete = self.cand[a]
            valid = self.x[rows] == a
        best = np.where(valid, keys, np.inf).min(axis=0, initial=np.inf)
        new = self.new.get(a)
        if new is not None and len(new):
            new = np.unique(new[self.x[new] == a])
            self.new[a] = new
            if len(new):
                best = np.minimum(best, self._keys(new, a).min(axis=0))
        return best

    def _build(self, a: int) -> None:
        """Candidate list of hour a: for every other node, the rows cheapest to move there."""
        rows = np.flatnonzero(self.x == a)
        keys = self._keys(rows, a)
        k = min(_CANDIDATES, len(rows))
        complete = k == len(rows)
        if not complete:
            pick = np.argpartition(keys, k - 1, axis=0)[:k]
            keys = np.take_along_axis(keys, pick, axis=0)
            rows = rows[pick]
        else:
            rows = np.broadcast_to(rows[:, None], keys.shape).copy()
        self.cand[a] = (rows, keys, complete)
        self.new[a] = np.zeros(0, dtype=np.int64)

    def _keys(self, rows: np.ndarray, a: int) -> np.ndarray:
        """Price-free loss of moving each row from hour a to every node (inf: infeasible or a itself)."""
        vr = self.v[rows]
        keys = np.empty((len(rows), self.n))
        keys[:, :-1] = vr[:, a : a + 1] - vr
        keys[:, -1] = vr[:, a]
        keys[:, a] = np.inf
        return keys


def _fill_free_room(v: np.ndarray, cap: np.ndarray, x: np.ndarray, load: np.ndarray) -> None:
    """Rows left out that still fit somewhere at a value >= 0 go there (worth 0 at the optimum)."""
    n_hours = len(cap)
    out = np.flatnonzero(x == n_hours)
    if not len(out) or not (load < cap).any():
        return
    vals = v[out]
    vals = np.where(vals >= 0, vals, -np.inf)
    got = greedy_first_come(vals, cap - load)
    x[out[got >= 0]] = got[got >= 0]
    load += _used(got, n_hours)


# --- small helpers -----------------------------------------------------------------------------


def _dual_bound(v: np.ndarray, cap: np.ndarray, prices: np.ndarray) -> float:
    """Upper bound on any plan's value: sum of cap * price + each row's best value net of price."""
    bound = float((cap[prices > 0].astype(np.float64) * prices[prices > 0]).sum())
    for s in _blocks(len(v), v.shape[1]):
        bound += float(np.maximum((v[s] - prices).max(axis=1, initial=-np.inf), 0.0).sum())
    return bound


def _best_choice(v: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """Each row's best hour net of prices, or H (not sending) when nothing is worth >= 0."""
    m, n_hours = v.shape
    out = np.full(m, n_hours, dtype=np.int64)
    if not n_hours:
        return out
    for s in _blocks(m, n_hours):
        r = v[s] - prices
        choice = r.argmax(axis=1)
        out[s] = np.where(r[np.arange(len(r)), choice] >= 0, choice, n_hours)
    return out


def _best_open(v: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Each row's best feasible hour among those not closed, -1 when none."""
    out = np.full(len(v), NO_HOUR, dtype=np.int64)
    if not v.shape[1]:
        return out
    for s in _blocks(len(v), v.shape[1]):
        r = np.where(closed, -np.inf, v[s])
        choice = r.argmax(axis=1)
        out[s] = np.where(np.isfinite(r[np.arange(len(r)), choice]), choice, NO_HOUR)
    return out


def _fill_positions(choice: np.ndarray, room: np.ndarray, n_hours: int) -> int | None:
    """Position in `choice` of the row that takes the last free slot of some hour first, or None."""
    counts = np.bincount(choice[choice >= 0], minlength=n_hours)
    filling = np.flatnonzero((counts >= room) & (room > 0))
    if not len(filling):
        return None
    order = np.argsort(choice, kind="stable")
    starts = np.searchsorted(choice[order], filling)
    return int(order[starts + room[filling] - 1].min())


def _value_at(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Value of each row at its choice (0 for "not sending")."""
    placed = x < v.shape[1]
    out = np.zeros(len(x))
    out[placed] = v[np.flatnonzero(placed), x[placed]]
    return out


def _blocks(n_rows: int, width: int) -> Iterator[slice]:
    step = max(1, _CHUNK_CELLS // max(width, 1))
    for lo in range(0, n_rows, step):
        yield slice(lo, min(lo + step, n_rows))


def _as_vector(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name}: contains NaN; use -inf for an infeasible channel")
    return a


def _as_matrix(value: np.ndarray) -> np.ndarray:
    v = np.asarray(value)
    v = v if v.dtype == np.float64 else v.astype(np.float64)
    if v.ndim != 2:
        raise ValueError(f"value: expected shape [rows, hours], got {v.shape}")
    if np.isnan(v).any() or np.isposinf(v).any():
        raise ValueError("value: contains NaN or +inf; use -inf for an infeasible hour")
    return v


def _as_capacity(capacity: np.ndarray, n_hours: int) -> np.ndarray:
    cap = np.asarray(capacity)
    if cap.shape != (n_hours,):
        raise ValueError(f"capacity: expected shape ({n_hours},), got {cap.shape}")
    if not np.issubdtype(cap.dtype, np.integer) or (cap < 0).any():
        raise ValueError("capacity: expected non-negative integers (UNLIMITED for no cap)")
    return cap.astype(np.int64)


def _as_grid(value: np.ndarray, feasible: np.ndarray | None) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.ndim != 3 or v.shape[1] != 2:
        raise ValueError(f"value: expected shape [n, 2, H], got {v.shape}")
    if feasible is not None:
        mask = np.asarray(feasible, dtype=bool)
        if mask.shape != v.shape:
            raise ValueError(f"feasible: expected shape {v.shape}, got {mask.shape}")
        v = np.where(mask, v, -np.inf)
    if np.isnan(v).any():
        raise ValueError("value: contains NaN; use -inf (or the feasible mask) for an infeasible cell")
    return v
