"""A synthetic world with a known truth, so models can be judged against what they should have learnt.

Every event comes from one behavioural model: each person checks e-mail and glances at the phone as an
inhomogeneous Poisson process whose intensity follows a personal hour-of-week habit in local time; a
message is seen at the first check after its send, and the chance of acting on it decays with the wait.
`ground_truth/response.npy` is that model's click probability computed on the same 5-minute grid the
events are sampled on, so a perfect learner could recover it. The exports themselves are made as messy
as real ones (case, spaces, phone formats, no machine-open flag, Apple MPP machine opens).

Within the 24 h after a send, local time runs on continuously: a DST change inside that day is ignored
by the behaviour (people keep their clock habits), but the send's own local time is always DST-correct.
The export is taken at the end of the history, so the last day's sends have censored outcomes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import timezone as pn_timezone
from tqdm import tqdm

from sendtime import schema as S

BINS_PER_HOUR = 12  # the model's time step is 5 minutes
DT = 1.0 / BINS_PER_HOUR  # hours
WEEK_BINS = S.HOURS_PER_WEEK * BINS_PER_HOUR
HORIZON_H = 24  # clicks count within 24 h of the send
LAG_BINS = HORIZON_H * BINS_PER_HOUR
HOUR_NS = 3_600_000_000_000
MONDAY_NS = 4 * 24 * HOUR_NS  # 1970-01-05 was a Monday: origin of hour-of-week

TZ_NAMES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
            "Europe/London", "Europe/Berlin", "Australia/Sydney")  # fmt: skip
TZ_SHARES = (0.30, 0.19, 0.08, 0.21, 0.09, 0.08, 0.05)
TZ_REGION = ("US", "US", "US", "US", "GB", "DE", "AU")
US_AREA_CODES = {
    "America/New_York": ("212", "646", "917", "718", "347"),
    "America/Chicago": ("312", "773", "872"),
    "America/Denver": ("303", "720"),
    "America/Los_Angeles": ("213", "310", "323", "415", "818"),
}
DE_MOBILE = ("151", "152", "157", "160", "162", "170", "171", "172", "173", "175", "176", "177", "178", "179")

# weekday peak hours (local) of the activity bumps; a second peak only for commuters
ARCHETYPES = {"early_morning": (6.5, np.nan), "commute": (7.75, 17.75), "lunch": (12.5, np.nan),
              "afternoon": (15.5, np.nan), "evening": (20.0, np.nan), "late_night": (23.0, np.nan)}  # fmt: skip
ARCH_NAMES = tuple(ARCHETYPES)
ARCH_PEAKS = np.array(list(ARCHETYPES.values()))
ARCH_SHARES = (0.15, 0.20, 0.20, 0.15, 0.20, 0.10)

# campaign blasts: (weekdays, Monday = 0) at a fixed UTC hour, as brands schedule them
BRAND_SENDS = {S.EMAIL: {"weekdays": [1, 3, 5], "utc_hour": 14}, S.SMS: {"weekdays": [4], "utc_hour": 17}}

PARAMS = {
    "channel_mix": {"email_only": 0.45, "sms_only": 0.15, "dual": 0.40},
    "unengaged_share": {S.EMAIL: 0.87, S.SMS: 0.66},
    # latent correlation of the two engagement scores: P(email unengaged | sms unengaged) ~ 0.94
    "engagement_latent_correlation": 0.53,
    "mpp_share": 0.45,
    "sms_habit_differs_share": 0.40,
    "base_checks_per_h": {S.EMAIL: 0.03, S.SMS: 0.15},
    "peak_checks_per_h": {S.EMAIL: 1.0, S.SMS: 3.0},
    "peak_jitter_sd_h": 1.0,
    "peak_jitter_max_h": 2.0,
    "width_h": [0.9, 1.8],
    "weekend_shift_h": [1.0, 2.5],
    "weekend_width_factor": 1.5,
    "tau_h": {S.EMAIL: [4.0, 12.0], S.SMS: [0.5, 1.5]},
    "engaged_open_prob": [0.35, 0.8],
    "engaged_click_given_open": [0.15, 0.4],
    "engaged_sms_click_prob": [0.1, 0.32],
    "unengaged_open_factor": [0.15, 0.4],
    "unengaged_click_divisor": [10.0, 30.0],
    "journeys_per_week": {S.EMAIL: [1.0, 2.5], S.SMS: [0.3, 0.8]},  # [unengaged, engaged]
    "journey_delay_min": [1.0, 30.0],
    "blast_spread_min": 10.0,
    "hard_bounce_share": 0.02,
    "unsubscribe_prob_when_seen": {S.EMAIL: 0.003, S.SMS: 0.008},
    "conversion_given_click": 0.12,
    "repeat_open_prob": 0.25,
    "mpp_open_delay_s": [1.0, 90.0],
    "subscribed_during_history_share": 0.15,
    "timezone_known_share": 0.5,
    "channel_case_noise_share": 0.05,
    "identity_link_share": 0.85,
    "time_step_min": 5,
    "horizon_h": HORIZON_H,
}
EMAIL_VARIANT_P = (0.74, 0.08, 0.04, 0.04, 0.05, 0.05)  # canonical, Capital, UPPER, mIxEd, " lead", "trail "
PHONE_VARIANT_P = (0.55, 0.20, 0.15, 0.10)  # US: E.164, (212) 555-0123, 212-555-0123, +1 212 555 0123
FIRST = ("ana", "ben", "carla", "david", "emma", "felix", "grace", "hugo", "ines", "jack", "kim", "liam",
         "maria", "noah", "olga", "paul", "quinn", "rosa", "sam", "tara", "uma", "victor", "wen", "yara")  # fmt: skip
LAST = ("smith", "garcia", "miller", "nguyen", "brown", "jones", "lee", "muller", "schmidt", "taylor",
        "wilson", "patel", "kim", "lopez", "clark", "young", "walker", "king", "wright", "scott")  # fmt: skip
DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "inbox.example", "post.example")
ETYPE = {name: i for i, name in enumerate(S.EVENT_TYPES)}


@dataclass
class People:
    """Per-person truth; arrays [n] or [n, 2] with channel index as in schema.CHANNELS."""

    tz: np.ndarray
    has: np.ndarray
    engaged: np.ndarray
    mpp: np.ndarray
    bounces: np.ndarray
    arch: np.ndarray  # archetype index per channel
    peaks: np.ndarray  # [n, 2, 2] weekday peak hours, NaN for no second peak
    width: np.ndarray
    weekend_shift: np.ndarray
    base: np.ndarray
    amp: np.ndarray
    tau: np.ndarray
    open_p: np.ndarray  # e-mail: open probability if seen at once
    click_p: np.ndarray  # click probability if seen at once (e-mail: open x click-given-open)
    journeys: np.ndarray  # triggered journeys per week per channel

    @property
    def n(self) -> int:
        return len(self.tz)


def _u(rng: np.random.Generator, lo_hi, size) -> np.ndarray:
    return rng.uniform(lo_hi[0], lo_hi[1], size)


def sample_people(n: int, seed: int | np.random.Generator = 0) -> People:
    """Draws who the people are. Public so tests can check the population without simulating history."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    P = PARAMS
    tz = rng.choice(len(TZ_NAMES), n, p=TZ_SHARES)
    kind = rng.choice(3, n, p=list(P["channel_mix"].values()))  # 0 email only, 1 sms only, 2 dual
    has = np.stack([kind != 1, kind != 0], axis=1)
    # one shared latent factor makes disengagement correlated across channels, as observed in practice
    load = np.sqrt(P["engagement_latent_correlation"])
    latent = load * rng.standard_normal(n)[:, None] + np.sqrt(1 - load**2) * rng.standard_normal((n, 2))
    thr = np.array([NormalDist().inv_cdf(P["unengaged_share"][c]) for c in S.CHANNELS])
    engaged = (latent > thr) & has
    mpp = has[:, 0] & (rng.random(n) < P["mpp_share"])
    bounces = has[:, 0] & (rng.random(n) < P["hard_bounce_share"])

    arch_e = rng.choice(len(ARCH_NAMES), n, p=ARCH_SHARES)
    differs = (kind == 2) & (rng.random(n) < P["sms_habit_differs_share"])
    arch_s = np.where(differs, (arch_e + rng.integers(1, len(ARCH_NAMES), n)) % len(ARCH_NAMES), arch_e)
    arch = np.stack([arch_e, arch_s], axis=1)
    lim = P["peak_jitter_max_h"]
    jit_e = np.clip(rng.normal(0, P["peak_jitter_sd_h"], n), -lim, lim)
    jit_s = np.where(differs, np.clip(rng.normal(0, P["peak_jitter_sd_h"], n), -lim, lim), jit_e)
    jit_s = jit_s + rng.normal(0, 0.3, n)
    peaks = ARCH_PEAKS[arch] + np.stack([jit_e, jit_s], axis=1)[:, :, None]

    chan = list(S.CHANNELS)
    base = np.array([P["base_checks_per_h"][c] for c in chan]) * rng.lognormal(0, 0.3, (n, 2))
    amp = np.array([P["peak_checks_per_h"][c] for c in chan]) * rng.lognormal(0, 0.4, (n, 2))
    tau = np.stack([_u(rng, P["tau_h"][c], n) for c in chan], axis=1)

    o, q = _u(rng, P["engaged_open_prob"], n), _u(rng, P["engaged_click_given_open"], n)
    open_factor = np.where(engaged[:, 0], 1.0, _u(rng, P["unengaged_open_factor"], n))
    div = np.where(engaged, 1.0, _u(rng, P["unengaged_click_divisor"], (n, 2)))
    sms_p = _u(rng, P["engaged_sms_click_prob"], n)
    click_p = np.stack([o * q, sms_p], axis=1) / div
    journeys = np.stack(
        [np.where(engaged[:, i], *P["journeys_per_week"][c][::-1]) for i, c in enumerate(chan)], 1
    )
    return People(tz=tz, has=has, engaged=engaged, mpp=mpp, bounces=bounces, arch=arch, peaks=peaks,
                  width=_u(rng, P["width_h"], (n, 2)), weekend_shift=_u(rng, P["weekend_shift_h"], (n, 2)),
                  base=base, amp=amp, tau=tau, open_p=o * open_factor, click_p=click_p, journeys=journeys)  # fmt: skip


def _chunks(n: int, size: int):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


def activity_grid(p: People) -> np.ndarray:
    """Checks per hour, float32 [n, 2, 2016], on 5-minute local bins starting Monday 00:00.

    Piecewise constant (the bin-centre value), so that sampling and ground truth share one exact model.
    """
    # one 24 h pattern for weekdays and one for weekends (later and broader), laid out over the week
    hod = (np.arange(24 * BINS_PER_HOUR) + 0.5) * DT
    weekend = np.arange(7) >= 5
    out = np.empty((p.n, 2, WEEK_BINS), np.float32)
    for sl in _chunks(p.n, 2048):
        days = []
        for we in (False, True):
            mu = p.peaks[sl, :, :, None] + (p.weekend_shift[sl, :, None, None] if we else 0.0)
            sd = p.width[sl, :, None, None] * (PARAMS["weekend_width_factor"] if we else 1.0)
            d = (hod - mu + 12.0) % 24.0 - 12.0
            bump = np.nansum(np.exp(-0.5 * (d / sd) ** 2), axis=2)
            days.append((p.base[sl, :, None] + p.amp[sl, :, None] * bump).astype(np.float32))
        out[sl] = np.concatenate([days[int(w)] for w in weekend], axis=-1)
    return out


def response_matrix(p: People, grid: np.ndarray, soft_bounce_rate: float = 0.0) -> np.ndarray:
    """P(click within 24 h | send at the start of local hour-of-week h), float32 [n, 2, 168].

    An e-mail that bounces transiently (`soft_bounce_rate`) is never seen, whatever its hour.

    Hour blocks make this exact for the 5-minute model yet cheap: within an hour, the chance of the
    first check in each bin times its decay; across hours, a running survival-and-decay product.
    """
    out = np.zeros((p.n, 2, S.HOURS_PER_WEEK), np.float32)
    i = np.arange(BINS_PER_HOUR)
    for sl in _chunks(p.n, 1024):
        lam = grid[sl].astype(np.float64).reshape(-1, 2, S.HOURS_PER_WEEK, BINS_PER_HOUR) * DT
        tau = p.tau[sl, :, None, None]
        before = np.cumsum(lam, axis=-1) - lam
        within = (np.exp(-before) * -np.expm1(-lam) * np.exp(-(i + 0.5) * DT / tau)).sum(-1)
        passing = np.exp(-lam.sum(-1) - 1.0 / tau[..., 0])
        acc, surv = np.zeros_like(within), np.ones_like(within)
        for m in range(HORIZON_H):
            acc += surv * np.roll(within, -m, axis=-1)
            surv *= np.roll(passing, -m, axis=-1)
        reachable = p.has[sl] & np.stack([~p.bounces[sl], np.ones(len(acc), bool)], axis=1)
        delivered = reachable * np.array([1.0 - soft_bounce_rate, 1.0])
        out[sl] = acc * p.click_p[sl, :, None] * delivered[:, :, None]
    return out


def local_hour_of_week(t_ns: np.ndarray, tz: np.ndarray) -> np.ndarray:
    """Fractional local hour-of-week of UTC instants, DST-correct through pandas tz_convert."""
    out = np.empty(len(t_ns))
    for i, name in enumerate(TZ_NAMES):
        m = tz == i
        if m.any():
            wall = (
                pd.DatetimeIndex(t_ns[m].view("datetime64[ns]"))
                .tz_localize("UTC")
                .tz_convert(name)
                .tz_localize(None)
            )
            out[m] = ((wall.asi8 - MONDAY_NS) / HOUR_NS) % S.HOURS_PER_WEEK
    return out


def _wall_to_utc_ns(wall_ns: np.ndarray, tz: np.ndarray) -> np.ndarray:
    out = np.empty_like(wall_ns)
    for i, name in enumerate(TZ_NAMES):
        m = tz == i
        if m.any():
            idx = pd.DatetimeIndex(wall_ns[m].view("datetime64[ns]")).tz_localize(
                name, ambiguous=np.ones(int(m.sum()), bool), nonexistent="shift_forward"
            )
            out[m] = idx.asi8
    return out


def _phone_ok(e164: str, tz_i: int) -> bool:
    num = phonenumbers.parse(e164)
    return (
        phonenumbers.is_valid_number(num)
        and phonenumbers.region_code_for_number(num) == TZ_REGION[tz_i]
        and TZ_NAMES[tz_i] in pn_timezone.time_zones_for_number(num)
    )


def _random_phone(tz_i: int, rng: np.random.Generator) -> str:
    name = TZ_NAMES[tz_i]
    if name in US_AREA_CODES:
        exch = int(rng.integers(200, 1000))
        exch = 556 if exch == 555 else exch  # 555 is kept for the fictional 555-01xx block
        return f"+1{rng.choice(US_AREA_CODES[name])}{exch}{int(rng.integers(0, 10000)):04d}"
    if TZ_REGION[tz_i] == "GB":
        return f"+447{int(rng.integers(400_000_000, 1_000_000_000))}"
    if TZ_REGION[tz_i] == "DE":
        return f"+49{rng.choice(DE_MOBILE)}{int(rng.integers(1_000_000, 100_000_000))}"
    return f"+614{int(rng.integers(10_000_000, 100_000_000))}"


def phone_numbers(tz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique valid E.164 numbers whose area code lies in the person's timezone.

    US numbers come from the fictional 555-0100..0199 block while it lasts (100 per area code), then
    from other valid exchanges: validity and the area code-timezone link matter more for the models.
    """
    out = np.empty(len(tz), object)
    used: set[str] = set()
    for i, name in enumerate(TZ_NAMES):
        pos = np.flatnonzero(tz == i)
        nums: list[str] = []
        if name in US_AREA_CODES and len(pos):
            pool = [f"+1{a}555{x:04d}" for a in US_AREA_CODES[name] for x in range(100, 200)]
            nums = [pool[j] for j in rng.permutation(len(pool))[: len(pos)] if _phone_ok(pool[j], i)]
        used.update(nums)
        while len(nums) < len(pos):
            cand = _random_phone(i, rng)
            if cand not in used and _phone_ok(cand, i):
                used.add(cand)
                nums.append(cand)
        out[pos] = nums
    return out


def _phone_formats(e164: str) -> tuple[list[str], str]:
    """Event/subscriber variants (4) and the sign-up form's way of typing it (identity links)."""
    if e164.startswith("+1"):
        a, b, c = e164[2:5], e164[5:8], e164[8:]
        return [e164, f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"+1 {a} {b} {c}"], f"+1-{a}-{b}-{c}"
    intl = phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return [e164, intl, e164, intl], intl.replace(" ", "-")


def _emails(n: int, rng: np.random.Generator) -> np.ndarray:
    first = np.array(FIRST)[rng.integers(0, len(FIRST), n)].astype(object)
    last = np.array(LAST)[rng.integers(0, len(LAST), n)].astype(object)
    sep = np.array([".", "_", ""])[rng.integers(0, 3, n)].astype(object)
    dom = np.array(DOMAINS)[rng.choice(len(DOMAINS), n)].astype(object)
    pid = np.arange(n).astype(str).astype(object)  # the id keeps every address unique
    return first + sep + last + pid + "@" + dom


def address_book(p: People, rng: np.random.Generator) -> dict:
    """Canonical addresses, their messy variants [n, 2, 6] and the identity-link spellings."""
    canon_email = _emails(p.n, rng)
    e164 = np.full(p.n, None, object)
    e164[p.has[:, 1]] = phone_numbers(p.tz[p.has[:, 1]], rng)
    variants = np.full((p.n, 2, 6), "", object)
    link = np.full((p.n, 2), "", object)
    for j in np.flatnonzero(p.has[:, 0]):
        c = canon_email[j]
        mixed = "".join(ch.upper() if r else ch for ch, r in zip(c, rng.random(len(c)) < 0.3, strict=True))
        variants[j, 0] = [c, c[0].upper() + c[1:], c.upper(), mixed, " " + c, c + " "]
        link[j, 0] = c.title()
    for j in np.flatnonzero(p.has[:, 1]):
        forms, link[j, 1] = _phone_formats(e164[j])
        variants[j, 1, :4] = forms
    email = np.where(p.has[:, 0], canon_email, None)
    return {"email": email, "phone": e164, "variants": variants, "link": link}


def _variant_index(chan: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ve = rng.choice(len(EMAIL_VARIANT_P), len(chan), p=EMAIL_VARIANT_P)
    vp = rng.choice(len(PHONE_VARIANT_P), len(chan), p=PHONE_VARIANT_P)
    return np.where(chan == 0, ve, vp)


def _subscribed_at(p: People, days: int, rng: np.random.Generator) -> np.ndarray:
    """Seconds relative to start; some join during the history, so their sends start late."""
    during = rng.random((p.n, 2)) < PARAMS["subscribed_during_history_share"]
    before = -rng.uniform(14, 1000, (p.n, 2)) * 86400
    return np.round(np.where(during, rng.uniform(0, days, (p.n, 2)) * 86400, before))


def blast_times(start: pd.Timestamp, days: int) -> dict[int, np.ndarray]:
    """Seconds after start of each brand campaign blast, per channel index."""
    day0 = start.normalize()
    out = {}
    for c, name in enumerate(S.CHANNELS):
        cfg = BRAND_SENDS[name]
        ts = [day0 + pd.Timedelta(days=d, hours=cfg["utc_hour"]) for d in range(days + 1)]
        secs = [(t - start).total_seconds() for t in ts if t.weekday() in cfg["weekdays"]]
        out[c] = np.array([s for s in secs if 0 <= s < days * 86400], float)
    return out


def _blasts(p: People, sub_at: np.ndarray, start: pd.Timestamp, days: int, rng: np.random.Generator):
    parts = []
    for c, times in blast_times(start, days).items():
        who = np.flatnonzero(p.has[:, c])
        per, t = np.repeat(who, len(times)), np.tile(times, len(who))
        keep = t >= sub_at[per, c]
        per, t = per[keep], t[keep] + rng.uniform(0, PARAMS["blast_spread_min"] * 60, int(keep.sum()))
        parts.append((per, np.full(len(per), c), t))
    return parts


def _journeys(p, grid, sub_at, start: pd.Timestamp, days: int, rng: np.random.Generator):
    """Triggered sends (browse/cart abandonment) follow the person's own activity, at varied hours."""
    weeks = days // 7 + 3  # whole local weeks around the history, trimmed to it afterwards
    monday = (start.tz_convert(None).normalize() - pd.Timedelta(days=start.weekday() + 7)).value
    hourly = grid.reshape(p.n, 2, S.HOURS_PER_WEEK, BINS_PER_HOUR).sum(-1, dtype=np.float64)
    parts = []
    for c in range(2):
        cnt = rng.poisson(p.journeys[:, c] * weeks * p.has[:, c])
        per = np.repeat(np.arange(p.n), cnt)
        w = hourly[:, c]
        cum = np.cumsum(w.ravel())
        lo = cum[per * S.HOURS_PER_WEEK] - w[per, 0]
        target = lo + rng.random(len(per)) * w[per].sum(1)
        how = np.searchsorted(cum, target, side="right") - per * S.HOURS_PER_WEEK
        how = np.clip(how, 0, S.HOURS_PER_WEEK - 1) + rng.random(len(per))
        wall = monday + rng.integers(0, weeks, len(per)) * 168 * HOUR_NS + (how * HOUR_NS).astype(np.int64)
        t = (_wall_to_utc_ns(wall, p.tz[per]) - start.value) / 1e9
        t += rng.uniform(*PARAMS["journey_delay_min"], len(per)) * 60
        keep = (t >= 0) & (t < days * 86400) & (t >= sub_at[per, c])
        parts.append((per[keep], np.full(int(keep.sum()), c), t[keep]))
    return parts


def first_check(grid: np.ndarray, row: np.ndarray, x_local: np.ndarray, rng: np.random.Generator):
    """Lag bin (0..287, 288 = not within 24 h) of the first check after each send.

    Inverse-transform sampling on the cumulative intensity of the 5-minute bins after the send.
    """
    flat = grid.reshape(-1, WEEK_BINS)
    e = rng.exponential(size=len(row))
    k = np.empty(len(row), np.int32)
    lags = np.arange(LAG_BINS)
    for sl in _chunks(len(row), 20_000):
        b0 = np.floor(x_local[sl] * BINS_PER_HOUR + 0.5).astype(np.int64)
        lam = flat[row[sl, None], (b0[:, None] + lags) % WEEK_BINS]
        k[sl] = (np.cumsum(lam, axis=1) * np.float32(DT) < e[sl, None]).sum(1)
    return k


def behaviour(p, grid, per, chan, t, journey, start_ns, rng, soft: np.ndarray | None = None) -> dict:
    """Outcome of every send: when it was seen, opened, clicked, unsubscribed; then truncation.

    `soft` (bool per send, optional): the e-mails that bounce transiently: never delivered nor seen, but
    the address stays alive and later sends go on."""
    x = local_hour_of_week(start_ns + (t * 1e9).astype(np.int64), p.tz[per])
    k = first_check(grid, per * 2 + chan, x, rng)
    seen = k < LAG_BINS
    check = t + (k + rng.random(len(k))) * DT * 3600
    decay = np.exp(-(k + 0.5) * DT / p.tau[per, chan])
    u = rng.random((3, len(k)))
    email = chan == 0
    opened = email & seen & (u[0] < p.open_p[per] * decay)
    click_given_open = p.click_p[per, 0] / p.open_p[per]
    clicked = np.where(email, opened & (u[1] < click_given_open), seen & (u[0] < p.click_p[per, 1] * decay))
    unsub_p = np.array([PARAMS["unsubscribe_prob_when_seen"][c] for c in S.CHANNELS])[chan]
    unsub_t = np.where(seen & (u[2] < unsub_p), check + rng.uniform(10, 300, len(k)), np.inf)

    # the first e-mail to a dead address bounces; a bounce or an unsubscribe ends that channel's sends
    key = per * 2 + chan
    _, first = np.unique(key, return_index=True)
    bounce = np.zeros(len(k), bool)
    bounce[first] = email[first] & p.bounces[per[first]]
    soft = np.zeros(len(k), bool) if soft is None else soft & email & ~bounce
    unsub_t = np.where(soft, np.inf, unsub_t)  # an e-mail that never arrived cannot be unsubscribed from
    stop = np.full(p.n * 2, np.inf)
    np.minimum.at(stop, key[bounce], t[bounce])
    np.minimum.at(stop, key, unsub_t)
    keep = t <= stop[key]
    unsub = np.isfinite(unsub_t) & (unsub_t == stop[key])
    live = ~bounce & ~soft
    out = dict(per=per, chan=chan, t=t, journey=journey, check=check, bounce=bounce | soft, soft=soft,
               opened=opened & live, clicked=clicked & live, unsub=unsub & live, unsub_t=unsub_t)  # fmt: skip
    return {name: v[keep] for name, v in out.items()}


def _event_parts(p: People, s: dict, rng: np.random.Generator):
    """(send index, seconds, event type) for every event; times follow the platform's order of things."""
    n = len(s["t"])
    idx, email, t = np.arange(n), s["chan"] == 0, s["t"]
    deliv = t + np.where(email, rng.uniform(1, 20, n), rng.uniform(2, 15, n))
    human = np.maximum(s["check"], deliv + 1.0)
    mpp = email & ~s["bounce"] & p.mpp[s["per"]]
    click_t = np.where(
        email, human + np.clip(rng.lognormal(np.log(30), 0.8, n), 2, 600), human + rng.uniform(3, 120, n)
    )
    conv = s["clicked"] & (rng.random(n) < PARAMS["conversion_given_click"])
    again = s["opened"] & (rng.random(n) < PARAMS["repeat_open_prob"])
    again_t = human + np.exp(rng.uniform(np.log(180), np.log(6 * 3600), n))
    parts = [
        (idx, t, S.SEND),
        (idx[~s["bounce"]], deliv[~s["bounce"]], S.DELIVERED),
        (idx[s["bounce"]], (t + rng.uniform(1, 30, n))[s["bounce"]], S.BOUNCE),
        (idx[mpp], (deliv + rng.uniform(*PARAMS["mpp_open_delay_s"], n))[mpp], S.OPEN),
        (idx[s["opened"]], human[s["opened"]], S.OPEN),
        (idx[again], again_t[again], S.OPEN),
        (idx[s["clicked"]], click_t[s["clicked"]], S.CLICK),
        (idx[conv], (click_t + rng.uniform(120, 5400, n))[conv], S.CONVERSION),
        (idx[s["unsub"]], s["unsub_t"][s["unsub"]], S.UNSUBSCRIBE),
    ]
    return parts


def events_frame(
    p: People, book: dict, s: dict, start_ns: int, rng: np.random.Generator, untyped: np.ndarray | None = None
) -> pd.DataFrame:
    """The events export. Bounce rows say `bounce_type` hard (the dead addresses) or soft (transient);
    `untyped` (bool per bounce row, in time order, optional) leaves some empty, as many platforms do."""
    parts = _event_parts(p, s, rng)
    send = np.concatenate([a for a, _, _ in parts])
    secs = np.concatenate([b for _, b, _ in parts])
    etype = np.concatenate([np.full(len(a), ETYPE[e], np.int8) for a, _, e in parts])
    order = np.argsort(secs, kind="stable")
    send, secs, etype = send[order], secs[order], etype[order]
    per, chan = s["per"][send], s["chan"][send]
    ns = start_ns + np.round(secs * 1e3).astype(np.int64) * 1_000_000
    noisy = rng.random(len(send)) < PARAMS["channel_case_noise_share"]
    case = np.where(noisy, rng.integers(1, 3, len(send)), 0)
    chan_names = np.array([[S.EMAIL, "Email", "EMAIL"], [S.SMS, "SMS", "Sms"]], dtype=object)
    msg_ids = ("m" + pd.Series(np.arange(len(s["t"]))).astype(str).str.zfill(8)).to_numpy(object)
    bounced = etype == ETYPE[S.BOUNCE]
    bounce_type = np.full(len(send), None, dtype=object)
    bounce_type[bounced] = np.where(s.get("soft", np.zeros(len(s["t"]), bool))[send[bounced]], S.SOFT, S.HARD)
    if untyped is not None:
        bounce_type[np.flatnonzero(bounced)[untyped]] = None
    return pd.DataFrame({
        S.TIMESTAMP: pd.to_datetime(ns, utc=True),
        S.CHANNEL: chan_names[chan, case],
        S.EVENT_TYPE: np.array(S.EVENT_TYPES, dtype=object)[etype],
        S.ADDRESS: book["variants"][per, chan, _variant_index(chan, rng)],
        S.MESSAGE_ID: msg_ids[send],
        S.BOUNCE_TYPE: bounce_type,
    })  # fmt: skip


def subscribers_frame(p, book, sub_at, start_ns, rng) -> pd.DataFrame:
    per, chan = np.nonzero(p.has)
    known = rng.random(len(per)) < PARAMS["timezone_known_share"]
    ns = start_ns + sub_at[per, chan].astype(np.int64) * 1_000_000_000
    df = pd.DataFrame({
        S.ADDRESS: book["variants"][per, chan, _variant_index(chan, rng)],
        S.CHANNEL: np.array(S.CHANNELS, dtype=object)[chan],
        S.TIMEZONE: np.where(known, np.array(TZ_NAMES, dtype=object)[p.tz[per]], ""),
        S.SUBSCRIBED_AT: pd.to_datetime(ns, utc=True),
    })  # fmt: skip
    return df.sort_values(S.SUBSCRIBED_AT, kind="stable").reset_index(drop=True)


def links_frame(p, book, sub_at, start_ns, days, rng) -> pd.DataFrame:
    """Sign-up forms that took both contacts: typed differently from what the platforms export."""
    per = np.flatnonzero(p.has.all(1) & (rng.random(p.n) < PARAMS["identity_link_share"]))
    a, b = book["link"][per, 0], book["link"][per, 1]
    swap = rng.random(len(per)) < 0.3
    seen = np.minimum(sub_at[per].max(1) + rng.uniform(0, 3600, len(per)), days * 86400 - 1)
    return pd.DataFrame({
        S.ADDRESS_A: np.where(swap, b, a), S.ADDRESS_B: np.where(swap, a, b),
        S.OBSERVED_AT: pd.to_datetime(start_ns + np.round(seen).astype(np.int64) * 1_000_000_000, utc=True),
    })  # fmt: skip


def people_frame(p: People, book: dict) -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": np.arange(p.n, dtype=np.int64), "email": book["email"], "phone": book["phone"],
        "timezone": np.array(TZ_NAMES, dtype=object)[p.tz],
        "email_engaged": p.engaged[:, 0], "sms_engaged": p.engaged[:, 1], "mpp": p.mpp,
        "archetype": np.array(ARCH_NAMES, dtype=object)[np.where(p.has[:, 0], p.arch[:, 0], p.arch[:, 1])],
        "sms_archetype": np.where(p.has[:, 1], np.array(ARCH_NAMES, dtype=object)[p.arch[:, 1]], None),
        "email_bounces": p.bounces,
    })  # fmt: skip


STEPS = ("people", "activity", "response", "addresses", "sends", "behaviour", "events", "write")


def simulate(
    out_dir: str | Path,
    subscribers: int = 2000,
    days: int = 84,
    seed: int = 0,
    start: str = "2026-08-31T00:00:00Z",
    progress: bool = False,
    soft_bounce_rate: float = 0.0,
    untyped_bounce_share: float = 0.0,
) -> dict:
    """Writes the world and returns a summary dict (counts of people, events by type/channel, paths).

    `subscribers` is the number of people; each has one or two addresses (e-mail, phone).
    `soft_bounce_rate`: the share of e-mails to live addresses that bounce transiently (a full mailbox, a
    server down): `bounce_type` soft, no delivery, and later sends go on. `untyped_bounce_share`: the
    share of bounce rows exported without a `bounce_type`. Both 0 by default, which leaves the default
    world exactly as it was (their random draws come from a stream of their own, drawn only when used);
    real exports show soft bounces on roughly 0.5-2% of e-mails.
    """
    for name, value in (
        ("soft_bounce_rate", soft_bounce_rate),
        ("untyped_bounce_share", untyped_bounce_share),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    t0 = time.perf_counter()
    out = Path(out_dir)
    start_ts = pd.Timestamp(start)
    start_ts = start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    start_ns = start_ts.value
    # one stream per step, and one more for the optional bounces (spawned last: the others are unchanged)
    *rngs, bounce_rng = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STEPS) + 1)]
    # disable=None: a bar on a terminal only; piped into a log or CI, no carriage-return frames
    bar = tqdm(total=len(STEPS), disable=None if progress else True, desc="simulate")

    def step(i: int) -> np.random.Generator:
        if i:
            bar.update(1)
        bar.set_postfix_str(STEPS[i])
        return rngs[i]

    p = sample_people(subscribers, step(0))
    step(1)
    grid = activity_grid(p)
    step(2)
    response = response_matrix(p, grid, soft_bounce_rate)
    rng = step(3)
    book = address_book(p, rng)
    sub_at = _subscribed_at(p, days, rng)
    rng = step(4)
    parts = _blasts(p, sub_at, start_ts, days, rng)
    n_blast = sum(len(x[0]) for x in parts)
    parts += _journeys(p, grid, sub_at, start_ts, days, rng)
    per, chan, t = (np.concatenate([x[i] for x in parts]) for i in range(3))
    order = np.argsort(t, kind="stable")
    journey = np.arange(len(t))[order] >= n_blast
    soft = bounce_rng.random(len(t)) < soft_bounce_rate if soft_bounce_rate > 0 else None
    s = behaviour(p, grid, per[order], chan[order], t[order], journey, start_ns, step(5), soft)
    rng = step(6)
    end_ts = start_ts + pd.Timedelta(days=days)
    n_bounces = int(s["bounce"].sum())
    untyped = bounce_rng.random(n_bounces) < untyped_bounce_share if untyped_bounce_share > 0 else None
    events = events_frame(p, book, s, start_ns, rng, untyped)
    events = events[events[S.TIMESTAMP] < end_ts].reset_index(drop=True)  # the export is taken at the end
    subs = subscribers_frame(p, book, sub_at, start_ns, rng)
    links = links_frame(p, book, sub_at, start_ns, days, rng)
    step(7)

    truth = out / S.GROUND_TRUTH_DIR
    truth.mkdir(parents=True, exist_ok=True)
    tables = {S.EVENTS_TABLE: events, S.SUBSCRIBERS_TABLE: subs, S.LINKS_TABLE: links}
    paths = {k: out / f"{k}.parquet" for k in tables} | {"people": truth / "people.parquet"}
    paths |= {"response": truth / "response.npy", "meta": truth / "meta.json"}
    tables["people"] = people_frame(p, book)
    for name, frame in tables.items():
        frame.to_parquet(paths[name], index=False)
    np.save(paths["response"], response)

    sends = events[S.EVENT_TYPE] == S.SEND
    summary = {
        "people": int(p.n),
        "email_only": int((p.has[:, 0] & ~p.has[:, 1]).sum()),
        "sms_only": int((~p.has[:, 0] & p.has[:, 1]).sum()),
        "dual": int(p.has.all(1).sum()),
        "subscribers_rows": len(subs),
        "identity_links": len(links),
        "events": len(events),
        "sends": int(sends.sum()),
        "journey_share_of_sends": round(float(s["journey"].mean()), 4),
        "events_by_type": events[S.EVENT_TYPE].value_counts().to_dict(),
        "events_by_channel": events[S.CHANNEL].str.lower().value_counts().to_dict(),
        "unengaged_share": {c: float(1 - p.engaged[p.has[:, i], i].mean()) for i, c in enumerate(S.CHANNELS)},
        "paths": {k: str(v) for k, v in paths.items()},
    }
    meta = {
        "seed": seed, "people": int(p.n), "days": days, "start": start_ts.isoformat(), "end": end_ts.isoformat(),
        "timezones": dict(zip(TZ_NAMES, TZ_SHARES, strict=True)),
        "archetypes": {k: [x for x in v if x == x] for k, v in ARCHETYPES.items()},
        "brand_sends": BRAND_SENDS, "params": PARAMS,
        "bounces": {"soft_bounce_rate": soft_bounce_rate, "untyped_bounce_share": untyped_bounce_share},
        "response": "P(click within 24 h | send at start of local hour-of-week h), [person, channel, h]; "
                    "h = 0 is Monday 00:00 local; channel order " + ",".join(S.CHANNELS),
        "counts": {k: summary[k] for k in ("events", "sends", "events_by_type", "events_by_channel")},
    }  # fmt: skip
    paths["meta"].write_text(json.dumps(meta, indent=2, default=int))
    bar.update(1)
    bar.close()
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary
