"""Who lives in a zoo world: continuous daily habits, channel behaviour, addresses, and the exact truth.

Behaviour, per person, in local time on 5-minute bins of the week:
- e-mail: the person looks at the inbox as a Poisson process (`read`, sessions per hour). A waiting
  message is opened at a look with probability `open_p * exp(-age / bury_h)` (it sinks under newer
  mail), so opens come hours later, often the next day; a click follows an open with `click_given_open`.
- SMS: the phone is glanced at (`glance`, high while awake, low asleep); the message is seen at the
  first glance and clicked with `sms_p * mood(hour seen) * exp(-wait / sms_tau_h)`, where `mood` is the
  person's SMS habit (for some the e-mail habit, for others their own).
Both are exact first-event models on the bin grid, so `response_matrix` is the true P(click within 24 h
| send at the start of a local hour-of-week) up to the click's own lag after the open or glance (at most
ten minutes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import phonenumbers
from phonenumbers import timezone as pn_timezone

from sendtime import schema as S
from sendtime.experiments.zoo.worlds import World

BINS_PER_HOUR = 12
DT = 1.0 / BINS_PER_HOUR  # hours
DAY_BINS = 24 * BINS_PER_HOUR
WEEK_BINS = 7 * DAY_BINS
HORIZON_BINS = 24 * BINS_PER_HOUR  # truth: a click within 24 h
FOLLOW_BINS = 48 * BINS_PER_HOUR  # the history lets opens and clicks come up to 48 h late

# zone -> (region, E.164 candidates); every number is checked with `phonenumbers` before use
PHONE_PLANS = {
    "America/New_York": ("US", "+1{a}{x}", ("212", "646", "917", "718")),
    "America/Chicago": ("US", "+1{a}{x}", ("312", "773", "872")),
    "America/Los_Angeles": ("US", "+1{a}{x}", ("213", "310", "323", "415")),
    "Europe/London": ("GB", "+447{a}{x}", ("4", "5", "7", "8", "9")),
    "Europe/Berlin": ("DE", "+49{a}{x}", ("151", "152", "157", "160", "170", "171", "176")),
    "Australia/Sydney": ("AU", "+614{a}{x}", ("0", "1", "2", "3", "5")),
    "America/Sao_Paulo": ("BR", "+5511{a}{x}", ("9",)),
    "Asia/Kolkata": ("IN", "+91{a}{x}", ("98", "97", "90", "88", "70")),
}
DIGITS_AFTER = {"US": 7, "GB": 8, "DE": 8, "AU": 7, "BR": 8, "IN": 8}
FIRST = ("ana", "bo", "chen", "dara", "eli", "femi", "gita", "hans", "ivo", "jun", "kofi", "lena", "mo",
         "nia", "omar", "pia", "raj", "sara", "tom", "uri", "vik", "wei", "ximena", "yusuf", "zoe")  # fmt: skip
# how often platforms export each spelling of `address_book`'s variants, per channel index
VARIANT_P = {0: (0.7, 0.15, 0.05, 0.1), 1: (0.5, 0.25, 0.15, 0.1)}
DOMAINS = ("mail.example", "example.com", "post.example", "example.co.uk", "example.de", "example.in")


@dataclass
class Population:
    """Per-person truth. Arrays [n], [n, 2] (channel as in schema.CHANNELS) or [n, 2, WEEK_BINS]."""

    zone: np.ndarray  # IANA names
    has: np.ndarray
    engaged: np.ndarray
    bumps: np.ndarray  # number of daily bumps of the e-mail habit
    shifted: np.ndarray  # weekend runs later
    sms_own_habit: np.ndarray
    read: np.ndarray  # [n, WEEK_BINS] inbox looks per hour
    glance: np.ndarray  # [n, WEEK_BINS] phone glances per hour
    mood: np.ndarray  # [n, WEEK_BINS] SMS click willingness, 0..1
    open_p: np.ndarray
    bury_h: np.ndarray
    click_given_open: np.ndarray
    sms_p: np.ndarray
    sms_tau_h: np.ndarray
    soft_p: np.ndarray  # [n, 2] chance a send soft-bounces
    dead: np.ndarray  # [n, 2] the address hard-bounces
    mpp: np.ndarray  # the e-mail client opens every delivered message by machine

    @property
    def n(self) -> int:
        return len(self.zone)


def _bumps_day(rng, n: int, bumps_p) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centres (h), widths (sd, h), weights [n, 3] (zero weight = no bump) and the count per person."""
    count = rng.choice(3, n, p=bumps_p) + 1
    anywhere = rng.random((n, 3)) < 0.3
    centre = np.where(anywhere, rng.uniform(0, 24, (n, 3)), rng.normal(14.0, 4.5, (n, 3))) % 24
    width = np.clip(rng.lognormal(np.log(1.2), 0.55, (n, 3)), 0.3, 4.5)
    weight = rng.dirichlet((2.0, 2.0, 2.0), n) * (np.arange(3)[None] < count[:, None])
    return centre, width, weight, count


def _curve(centre, width, weight, floor, shift, widen) -> np.ndarray:
    """[n, WEEK_BINS] habit, max 1 on weekdays: floor + wrapped Gaussian bumps; weekend moved by shift."""
    hod = (np.arange(DAY_BINS) + 0.5) * DT
    days = []
    for weekend in (False, True):
        mu = centre + (shift[:, None] if weekend else 0.0)
        sd = width * (widen[:, None] if weekend else 1.0)
        d = (hod[None, None, :] - mu[..., None] + 12.0) % 24.0 - 12.0
        days.append((weight[..., None] * np.exp(-0.5 * (d / sd[..., None]) ** 2)).sum(1))
    peak = np.maximum(days[0].max(1, keepdims=True), 1e-9)
    days = [floor[:, None] + (1 - floor[:, None]) * d / peak for d in days]
    return np.concatenate([days[0]] * 5 + [days[1]] * 2, axis=1)


def sample_population(w: World, n: int, rng: np.random.Generator) -> Population:
    names = np.array([z for z, _ in w.zones], dtype=object)
    shares = np.array([s for _, s in w.zones])
    zone = names[rng.choice(len(names), n, p=shares / shares.sum())]
    kind = rng.choice(3, n, p=w.channel_mix)
    has = np.stack([kind != 1, kind != 0], axis=1)
    latent = 0.7 * rng.standard_normal(n)[:, None] + 0.71 * rng.standard_normal((n, 2))
    engaged = (latent > np.quantile(latent, w.unengaged_share, axis=0)) & has

    shifted = rng.random(n) < w.weekend_shift_share
    shift = np.where(shifted, rng.uniform(1.0, 3.5, n), 0.0)
    widen = np.where(shifted, rng.uniform(1.0, 1.5, n), 1.0)
    c, wd, wt, count = _bumps_day(rng, n, w.bumps_p)
    habit = _curve(c, wd, wt, rng.uniform(0.02, 0.15, n), shift, widen)
    own = has.all(1) & (rng.random(n) < w.sms_habit_differs)
    c2, wd2, wt2, _ = _bumps_day(rng, n, w.bumps_p)
    sms_habit = _curve(
        np.where(own[:, None], c2, c + rng.normal(0, 0.3, (n, 1))),
        np.where(own[:, None], wd2, wd),
        np.where(own[:, None], wt2, wt),
        rng.uniform(0.02, 0.15, n),
        shift,
        widen,
    )
    sessions_per_day = rng.lognormal(np.log(3.0), 0.5, n)
    read = habit * (sessions_per_day / (habit[:, :DAY_BINS].sum(1) * DT))[:, None]

    wake = np.clip(rng.normal(7.0, 1.3, n), 4, 11)
    awake_h = rng.uniform(15, 18, n)
    hod = (np.arange(WEEK_BINS) % DAY_BINS + 0.5) * DT
    weekend = np.arange(WEEK_BINS) >= 5 * DAY_BINS
    since = (hod[None] - wake[:, None] - np.where(weekend[None], shift[:, None], 0.0)) % 24
    awake = 1 / (1 + np.exp(-(since - 0.25) * 4)) * 1 / (1 + np.exp((since - awake_h[:, None]) * 4))
    rate = rng.lognormal(np.log(3.0), 0.4, n)
    glance = 0.03 + rate[:, None] * awake

    dull = ~engaged
    open_p = rng.uniform(0.15, 0.5, n) * np.where(dull[:, 0], rng.uniform(0.05, 0.25, n), 1.0)
    cgo = rng.uniform(0.1, 0.35, n) / np.where(dull[:, 0], rng.uniform(3, 10, n), 1.0)
    sms_p = rng.uniform(0.08, 0.3, n) / np.where(dull[:, 1], rng.uniform(5, 20, n), 1.0)
    flaky = rng.random((n, 2)) < w.soft_bounce_flaky_share
    soft_p = np.where(flaky, rng.uniform(0.1, 0.4, (n, 2)), 0.003)
    dead = has & (rng.random((n, 2)) < np.array([w.hard_bounce_share, w.hard_bounce_share / 2]))
    return Population(
        zone=zone, has=has, engaged=engaged, bumps=count, shifted=shifted, sms_own_habit=own,
        read=read.astype(np.float32), glance=glance.astype(np.float32), mood=sms_habit.astype(np.float32),
        open_p=open_p, bury_h=rng.uniform(6, 30, n), click_given_open=cgo, sms_p=sms_p,
        sms_tau_h=rng.uniform(0.3, 1.5, n), soft_p=soft_p, dead=dead,
        mpp=has[:, 0] & (rng.random(n) < w.mpp_share),
    )  # fmt: skip


def response_matrix(p: Population) -> np.ndarray:
    """float32 [n, 2, 168]: P(click within 24 h | send at the start of local hour-of-week h).

    Dead addresses are 0 here; `generate` also zeroes addresses that unsubscribed in the history.
    """
    out = np.zeros((p.n, 2, S.HOURS_PER_WEEK), np.float32)
    k = np.arange(HORIZON_BINS)
    idx = (np.arange(S.HOURS_PER_WEEK)[:, None] * BINS_PER_HOUR + k[None]) % WEEK_BINS  # [168, 288]
    for lo in range(0, p.n, 128):
        sl = slice(lo, min(p.n, lo + 128))
        decay = np.exp(-(k + 0.5)[None] * DT / p.bury_h[sl, None])  # [c, 288]
        lam = p.read[sl][:, idx].astype(np.float64) * DT * (p.open_p[sl, None] * decay)[:, None]
        out[sl, 0] = p.click_given_open[sl, None] * -np.expm1(-lam.sum(-1))
        g = p.glance[sl][:, idx].astype(np.float64) * DT  # [c, 168, 288]
        first = np.exp(-(np.cumsum(g, -1) - g)) * -np.expm1(-g)
        act = p.mood[sl][:, idx] * np.exp(-(k + 0.5)[None] * DT / p.sms_tau_h[sl, None])[:, None]
        out[sl, 1] = p.sms_p[sl, None] * (first * act).sum(-1)
    live = p.has & ~p.dead
    return out * ((1 - p.soft_p) * live)[:, :, None].astype(np.float32)


def _phone_ok(e164: str, region: str, zone: str) -> bool:
    try:
        num = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(num)
        and phonenumbers.region_code_for_number(num) == region
        and (region != "US" or zone in pn_timezone.time_zones_for_number(num))
    )


def phone_numbers(zone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique valid E.164 mobile numbers of each person's country (US: an area code of the zone)."""
    out = np.empty(len(zone), object)
    used: set[str] = set()
    for i, z in enumerate(zone):
        region, pattern, prefixes = PHONE_PLANS[z]
        for _ in range(1000):
            digits = "".join(map(str, rng.integers(0, 10, DIGITS_AFTER[region])))
            if region == "US":
                digits = str(rng.integers(2, 10)) + digits[1:]
            cand = pattern.format(a=rng.choice(prefixes), x=digits)
            if cand not in used and _phone_ok(cand, region, z):
                break
        else:  # pragma: no cover - the plans above hit a valid number within a few tries
            raise RuntimeError(f"no valid phone number found for {z}")
        used.add(cand)
        out[i] = cand
    return out


def address_book(p: Population, rng: np.random.Generator) -> dict:
    """Canonical addresses and the spellings platforms export ([n, 2, 4] variants, weights)."""
    first = np.array(FIRST, dtype=object)[rng.integers(0, len(FIRST), p.n)]
    dom = np.array(DOMAINS, dtype=object)[rng.integers(0, len(DOMAINS), p.n)]
    email = np.array([f"{f}.{i}@{d}" for i, (f, d) in enumerate(zip(first, dom, strict=True))], dtype=object)
    phone = np.full(p.n, None, object)
    phone[p.has[:, 1]] = phone_numbers(p.zone[p.has[:, 1]], rng)
    variants = np.full((p.n, 2, 4), "", object)
    for j in range(p.n):
        e = email[j]
        variants[j, 0] = [e, e.capitalize(), e.upper(), f" {e} "]
        if phone[j] is not None:
            num = phonenumbers.parse(phone[j])
            intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            nat = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
            variants[j, 1] = [phone[j], intl, nat if phone[j].startswith("+1") else intl, phone[j]]
    return {"email": np.where(p.has[:, 0], email, None), "phone": phone, "variants": variants}
