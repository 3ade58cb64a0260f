"""A zoo world's history: brand blasts and triggered sends, each answered by `people`'s behaviour model,
written as an export folder (events, and where the world has them subscribers and identity links) plus
`ground_truth/` in the layout `sendtime simulate` writes, so `sendtime train` reports capture on it.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers

from sendtime import schema as S
from sendtime.experiments.zoo.people import (
    BINS_PER_HOUR,
    DT,
    FOLLOW_BINS,
    VARIANT_P,
    WEEK_BINS,
    Population,
    address_book,
    response_matrix,
    sample_population,
)
from sendtime.experiments.zoo.worlds import World, world

BOUNCE_TYPE = "bounce_type"  # contract column on bounce rows: hard | soft
HOUR_NS = 3_600_000_000_000
MONDAY_NS = 4 * 24 * HOUR_NS  # 1970-01-05 was a Monday: origin of hour-of-week
START = "2026-09-07T00:00:00Z"  # a Monday
STEPS = ("people", "addresses", "sends", "behaviour", "events")


def world_seed(w: World, seed: int) -> np.random.SeedSequence:
    """Each world draws its own people at a seed (worlds are not the same crowd in other clothes),
    except a paired export (`people_of`), which draws its twin's."""
    return np.random.SeedSequence([seed, zlib.crc32((w.people_of or w.name).encode())])


def local_how(t_ns: np.ndarray, zone: np.ndarray) -> np.ndarray:
    """Fractional local hour-of-week of UTC instants in each one's zone (DST-correct)."""
    out = np.empty(len(t_ns))
    for z in np.unique(zone):
        m = zone == z
        wall = pd.DatetimeIndex(t_ns[m].view("datetime64[ns]")).tz_localize("UTC").tz_convert(z)
        out[m] = ((wall.tz_localize(None).asi8 - MONDAY_NS) / HOUR_NS) % S.HOURS_PER_WEEK
    return out


def wall_to_utc(wall_ns: np.ndarray, zone: np.ndarray) -> np.ndarray:
    out = np.empty_like(wall_ns)
    for z in np.unique(zone):
        m = zone == z
        idx = pd.DatetimeIndex(wall_ns[m].view("datetime64[ns]")).tz_localize(
            z, ambiguous=np.ones(int(m.sum()), bool), nonexistent="shift_forward"
        )
        out[m] = idx.asi8
    return out


def subscribed_at(p: Population, days: int, rng: np.random.Generator) -> np.ndarray:
    """Seconds from the start, [n, 2]; 15% join during the history."""
    during = rng.random((p.n, 2)) < 0.15
    return np.round(np.where(during, rng.uniform(0, days, (p.n, 2)), -rng.uniform(14, 900, (p.n, 2))) * 86400)


def blast_sends(w: World, p: Population, sub_at, start: pd.Timestamp, days: int, rng) -> list[tuple]:
    """Campaigns at the brand's fixed local times: each reaches a share of the channel's subscribers."""
    parts = []
    local_day0 = start.tz_convert(w.brand_zone).tz_localize(None).normalize()
    for c, name in enumerate(S.CHANNELS):
        for slot in w.slots.get(name, ()):
            walls = [local_day0 + pd.Timedelta(days=d, hours=slot.hour) for d in range(-1, days + 1)]
            walls = [t for t in walls if t.weekday() in slot.weekdays]
            utc = pd.DatetimeIndex(walls).tz_localize(
                w.brand_zone, ambiguous=True, nonexistent="shift_forward"
            )
            secs = (utc.asi8 - start.value) / 1e9
            secs = secs[(secs >= 0) & (secs < days * 86400)]
            who = np.flatnonzero(p.has[:, c])
            per, t = np.repeat(who, len(secs)), np.tile(secs, len(who))
            keep = (t >= sub_at[per, c]) & (rng.random(len(per)) < slot.reach)
            per, t = per[keep], t[keep] + rng.uniform(0, 15 * 60, int(keep.sum()))
            parts.append((per, np.full(len(per), c), t))
    return parts


def triggered_sends(w: World, p: Population, sub_at, start: pd.Timestamp, days: int, rng) -> list[tuple]:
    """Browse and cart reminders, sent minutes after a personal moment of online activity."""
    weeks = days // 7 + 2
    rate = w.triggers_per_week * rng.lognormal(0, 0.7, p.n) * (p.engaged.any(1) + 0.3)
    per = np.repeat(np.arange(p.n), rng.poisson(rate * weeks))
    online = (p.read / p.read.max(1, keepdims=True) + p.mood).astype(np.float64)
    cum = np.cumsum(online.ravel())  # one running sum over everybody's weeks: one searchsorted
    lo = per * WEEK_BINS
    before = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
    target = before + rng.random(len(per)) * (cum[lo + WEEK_BINS - 1] - before)
    b = np.clip(np.searchsorted(cum, target) - lo, 0, WEEK_BINS - 1)
    monday = (start.tz_convert(None).normalize() - pd.Timedelta(days=start.weekday() + 7)).value
    wall = monday + rng.integers(0, weeks, len(per)) * 168 * HOUR_NS
    wall = wall + ((b + rng.random(len(per))) * DT * HOUR_NS).astype(np.int64)
    t = (wall_to_utc(wall, p.zone[per]) - start.value) / 1e9 + rng.uniform(60, 1800, len(per))
    chan = np.where(
        p.has[per].all(1), (rng.random(len(per)) < 0.35).astype(int), np.where(p.has[per, 0], 0, 1)
    )
    keep = (t >= 0) & (t < days * 86400) & (t >= sub_at[per, chan])
    return [(per[keep], chan[keep], t[keep])]


def _first_bin(lam: np.ndarray, rng) -> np.ndarray:
    """Index of the bin of a Poisson process's first event (len = none within the horizon)."""
    return (np.cumsum(lam, axis=1) < rng.exponential(size=(len(lam), 1))).sum(1)


def behaviour(p: Population, per, chan, t, start_ns: int, unsub_when_seen: tuple, rng) -> dict:
    """Each send's fate (bounce, delivery, open or glance, click, unsubscribe); an address's hard bounce
    or unsubscribe ends its sends, and `stop` says when (inf: never)."""
    n = len(t)
    b0 = np.floor(local_how(start_ns + (t * 1e9).astype(np.int64), p.zone[per]) * BINS_PER_HOUR + 0.5)
    b0 = b0.astype(np.int64) % WEEK_BINS
    k = np.arange(FOLLOW_BINS)
    first = np.full(n, FOLLOW_BINS)
    act_p = np.zeros(n)
    email = chan == 0
    for lo in range(0, n, 20_000):
        sl = np.arange(lo, min(n, lo + 20_000))
        cols = (b0[sl, None] + k[None]) % WEEK_BINS
        e, s = sl[email[sl]], sl[~email[sl]]
        ce, cs = cols[email[sl]], cols[~email[sl]]
        pe = per[e]
        decay = np.exp(-(k + 0.5)[None] * DT / p.bury_h[pe, None])
        first[e] = _first_bin(p.read[pe[:, None], ce] * DT * p.open_p[pe, None] * decay, rng)
        act_p[e] = p.click_given_open[pe]
        ps = per[s]
        first[s] = kf = _first_bin(p.glance[ps[:, None], cs] * DT, rng)
        seen_col = cs[np.arange(len(s)), np.minimum(kf, FOLLOW_BINS - 1)]
        act_p[s] = p.sms_p[ps] * p.mood[ps, seen_col] * np.exp(-(kf + 0.5) * DT / p.sms_tau_h[ps])
    key = per * 2 + chan
    _, first_send = np.unique(key, return_index=True)
    hard = np.zeros(n, bool)
    hard[first_send] = p.dead[per[first_send], chan[first_send]]
    soft = ~hard & (rng.random(n) < p.soft_p[per, chan])
    bounce = hard | soft
    seen = ~bounce & (first < FOLLOW_BINS)  # e-mail: opened; SMS: glanced at
    look = t + (first + rng.random(n)) * DT * 3600
    u = rng.random((2, n))
    clicked = seen & (u[0] < act_p)
    unsub_p = np.where(email, unsub_when_seen[0], unsub_when_seen[1])
    unsub_t = np.where(seen & (u[1] < unsub_p), look + rng.uniform(30, 600, n), np.inf)
    stop = np.full(p.n * 2, np.inf)
    np.minimum.at(stop, key[hard], t[hard])
    np.minimum.at(stop, key, unsub_t)
    keep = t <= stop[key]
    unsub = np.isfinite(unsub_t) & (unsub_t == stop[key])
    out = dict(per=per, chan=chan, t=t, hard=hard, soft=soft, seen=seen, look=look, clicked=clicked,
               unsub=unsub, unsub_t=unsub_t)  # fmt: skip
    out = {name: v[keep] for name, v in out.items()}
    out["stop"] = stop.reshape(p.n, 2)
    return out


def _event_parts(p: Population, s: dict, rng) -> list[tuple]:
    """(send index, seconds, event type, bounce type) of every event, in the platforms' order of things."""
    n = len(s["t"])
    idx, t, email = np.arange(n), s["t"], s["chan"] == 0
    ok = ~(s["hard"] | s["soft"])
    deliv = t + np.where(email, rng.uniform(1, 30, n), rng.uniform(2, 20, n))
    look = np.maximum(s["look"], deliv + 1.0)
    machine = email & ok & p.mpp[s["per"]]
    opened = email & s["seen"]
    click_t = look + np.where(email, rng.uniform(10, 600, n), rng.uniform(5, 120, n))
    again = opened & (rng.random(n) < 0.2)
    conv = s["clicked"] & (rng.random(n) < 0.1)
    return [
        (idx, t, S.SEND, ""),
        (idx[ok], deliv[ok], S.DELIVERED, ""),
        (idx[s["hard"]], (t + rng.uniform(1, 60, n))[s["hard"]], S.BOUNCE, "hard"),
        (idx[s["soft"]], (t + rng.uniform(1, 600, n))[s["soft"]], S.BOUNCE, "soft"),
        (idx[machine], (deliv + rng.uniform(1, 120, n))[machine], S.OPEN, "machine"),
        (idx[opened], look[opened], S.OPEN, ""),
        (idx[again], (look + np.exp(rng.uniform(np.log(600), np.log(72_000), n)))[again], S.OPEN, ""),
        (idx[s["clicked"]], click_t[s["clicked"]], S.CLICK, ""),
        (idx[conv], (click_t + rng.uniform(120, 3600, n))[conv], S.CONVERSION, ""),
        (idx[s["unsub"]], s["unsub_t"][s["unsub"]], S.UNSUBSCRIBE, ""),
    ]


def events_frame(w: World, p: Population, book: dict, s: dict, start_ns: int, rng) -> pd.DataFrame:
    parts = _event_parts(p, s, rng)
    send = np.concatenate([a for a, *_ in parts])
    secs = np.concatenate([b for _, b, *_ in parts])
    etype = np.concatenate([np.full(len(a), e, object) for a, _, e, _ in parts])
    tag = np.concatenate([np.full(len(a), x, object) for a, _, _, x in parts])
    order = np.argsort(secs, kind="stable")
    send, secs, etype, tag = send[order], secs[order], etype[order], tag[order]
    per, chan = s["per"][send], s["chan"][send]
    variant = np.where(
        chan == 0,
        rng.choice(4, len(send), p=VARIANT_P[0]),
        rng.choice(4, len(send), p=VARIANT_P[1]),
    )
    names = np.array([[S.EMAIL, "Email", "EMAIL"], [S.SMS, "SMS", "Sms"]], dtype=object)
    case = np.where(rng.random(len(send)) < 0.05, rng.integers(1, 3, len(send)), 0)
    frame = pd.DataFrame({
        S.TIMESTAMP: pd.to_datetime(start_ns + np.round(secs * 1e3).astype(np.int64) * 1_000_000, utc=True),
        S.CHANNEL: names[chan, case],
        S.EVENT_TYPE: etype,
        S.ADDRESS: book["variants"][per, chan, variant],
        S.MESSAGE_ID: np.char.add("z", send.astype(str)).astype(object),
        BOUNCE_TYPE: np.where(etype == S.BOUNCE, tag, ""),
    })  # fmt: skip
    if w.machine_flag:
        frame.insert(5, S.MACHINE_OPEN, tag == "machine")
    return frame


def subscribers_frame(w: World, p: Population, book, sub_at, start_ns: int, rng) -> pd.DataFrame:
    per, chan = np.nonzero(p.has)
    known = rng.random(len(per)) >= w.tz_unknown
    return pd.DataFrame({
        S.ADDRESS: book["variants"][per, chan, rng.integers(0, 4, len(per))],
        S.CHANNEL: np.array(S.CHANNELS, dtype=object)[chan],
        S.TIMEZONE: np.where(known, p.zone[per], ""),
        S.SUBSCRIBED_AT: pd.to_datetime(start_ns + sub_at[per, chan].astype(np.int64) * 10**9, utc=True),
    })  # fmt: skip


def links_frame(p: Population, book, sub_at, start_ns: int, days: int, rng) -> pd.DataFrame:
    """Sign-up forms that took both contacts, typed as people type them."""
    per = np.flatnonzero(p.has.all(1) & (rng.random(p.n) < 0.85))
    phones = [
        phonenumbers.format_number(phonenumbers.parse(x), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        for x in book["phone"][per]
    ]
    seen = np.minimum(sub_at[per].max(1) + rng.uniform(0, 3600, len(per)), days * 86400 - 1)
    return pd.DataFrame({
        S.ADDRESS_A: [e.title() for e in book["email"][per]],
        S.ADDRESS_B: phones,
        S.OBSERVED_AT: pd.to_datetime(start_ns + np.round(seen).astype(np.int64) * 10**9, utc=True),
    })  # fmt: skip


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "csv":
        out = frame.copy()
        for col in out.columns:
            if isinstance(out[col].dtype, pd.DatetimeTZDtype):
                out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
        out.to_csv(path.with_suffix(".csv"), index=False)
        return path.with_suffix(".csv")
    frame.to_parquet(path.with_suffix(".parquet"), index=False)
    return path.with_suffix(".parquet")


def people_frame(p: Population, book: dict, stopped: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "person_id": np.arange(p.n, dtype=np.int64), "email": book["email"], "phone": book["phone"],
        "timezone": p.zone, "email_engaged": p.engaged[:, 0], "sms_engaged": p.engaged[:, 1],
        "bumps": p.bumps, "weekend_shifted": p.shifted, "sms_own_habit": p.sms_own_habit, "mpp": p.mpp,
        "email_stopped": stopped[:, 0], "sms_stopped": stopped[:, 1],
    })  # fmt: skip


def generate(
    name: str | World,
    out_dir: str | Path,
    subscribers: int = 4000,
    weeks: int | None = None,
    seed: int = 0,
    start: str = START,
) -> dict:
    """Writes world `name` (a `WORLDS` key or a `World`) to `out_dir`; returns a summary of what it wrote."""
    w = world(name) if isinstance(name, str) else name
    weeks = w.weeks if weeks is None else weeks
    if weeks < 3 or subscribers < 1:
        raise ValueError(f"zoo: need at least 3 weeks and 1 subscriber (got {weeks} weeks, {subscribers})")
    days = 7 * weeks
    out = Path(out_dir)
    start_ts = pd.Timestamp(start)
    start_ts = start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    rngs = dict(
        zip(STEPS, (np.random.default_rng(s) for s in world_seed(w, seed).spawn(len(STEPS))), strict=True)
    )

    p = sample_population(w, subscribers, rngs["people"])
    book = address_book(p, rngs["addresses"])
    sub_at = subscribed_at(p, days, rngs["addresses"])
    rng = rngs["sends"]
    parts = blast_sends(w, p, sub_at, start_ts, days, rng)
    n_blast = sum(len(x[0]) for x in parts)
    parts += triggered_sends(w, p, sub_at, start_ts, days, rng)
    per, chan, t = (np.concatenate([x[i] for x in parts]) for i in range(3))
    triggered = np.arange(len(t)) >= n_blast
    order = np.argsort(t, kind="stable")
    per, chan, t, triggered = per[order], chan[order], t[order], triggered[order]
    s = behaviour(p, per, chan, t, start_ts.value, w.unsubscribe_when_seen, rngs["behaviour"])
    end_ts = start_ts + pd.Timedelta(days=days)
    events = events_frame(w, p, book, s, start_ts.value, rngs["events"])
    events = events[events[S.TIMESTAMP] < end_ts].reset_index(drop=True)  # the export is taken at the end

    stopped = s["stop"] < days * 86400  # unsubscribed or dead by the export: nothing to gain there
    response = response_matrix(p) * ~stopped[:, :, None]
    out.mkdir(parents=True, exist_ok=True)
    truth = out / S.GROUND_TRUTH_DIR
    truth.mkdir(exist_ok=True)
    for stale in out.glob("*.*"):  # a rerun with another world must not leave the last one's tables
        if stale.stem in (S.EVENTS_TABLE, S.SUBSCRIBERS_TABLE, S.LINKS_TABLE):
            stale.unlink()
    paths = {S.EVENTS_TABLE: _write(events, out / S.EVENTS_TABLE, w.file_format)}
    if w.subscribers_table:
        subs = subscribers_frame(w, p, book, sub_at, start_ts.value, rngs["events"])
        paths[S.SUBSCRIBERS_TABLE] = _write(subs, out / S.SUBSCRIBERS_TABLE, w.file_format)
    if w.identity_links:
        links = links_frame(p, book, sub_at, start_ts.value, days, rngs["events"])
        paths[S.LINKS_TABLE] = _write(links, out / S.LINKS_TABLE, w.file_format)
    people_frame(p, book, stopped).to_parquet(truth / "people.parquet", index=False)
    np.save(truth / "response.npy", response.astype(np.float32))
    sends = events[S.EVENT_TYPE] == S.SEND
    summary = {
        "world": w.name,
        "people": int(p.n),
        "weeks": weeks,
        "events": len(events),
        "sends": int(sends.sum()),
        "triggered_share_of_sends": round(float(triggered[t < days * 86400].mean()), 4) if len(t) else 0.0,
        "events_by_type": {k: int(v) for k, v in events[S.EVENT_TYPE].value_counts().items()},
        "paths": {k: str(v) for k, v in paths.items()},
    }
    meta = {
        "generator": "sendtime.experiments.zoo", "world": asdict(w), "seed": seed, "people": int(p.n),
        "days": days, "start": start_ts.isoformat(), "end": end_ts.isoformat(),
        "response": "P(click within 24 h | send at start of local hour-of-week h), [person, channel, h]; "
                    "h = 0 is Monday 00:00 local in people.timezone; channel order " + ",".join(S.CHANNELS)
                    + "; 0 for addresses dead or unsubscribed by the end of the export",
        "counts": {k: summary[k] for k in ("events", "sends", "events_by_type")},
    }  # fmt: skip
    (truth / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return summary
