"""What happens after a plan is sent, in a simulated world: the events that follow the plan, and the truth.

`follow_plan` sends every planned row of a plan written by `sendtime schedule` to a world written by
`sendtime simulate` at its `send_at` (plus up to a minute of queueing), and lets the world's own people
answer through the simulator's behaviour model: the same people, habits and address spellings (rebuilt
from the world's seed, and checked against its ground truth), so the clicks follow the true
P(click within 24 h | person, channel, local hour) that `ground_truth/response.npy` holds, with opens,
Apple MPP machine opens, conversions, bounces and unsubscribes as in the world's history. The result is
an export folder in the data contract (`events.parquet`), optionally with the world's own history in
front (an export that overlaps the training data), and optionally with a share of rows never sent.

`true_probability` gives the truth for any (person, channel, send instant): what tests and the report
benchmark compare the report's estimates with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.experiments import simulate as sim

_STREAM = 0x0C7C  # mixed into the outcome seed: outcome draws stay apart from the world's own


@dataclass
class World:
    """A simulated world rebuilt from its seed: people, activity, addresses, truth."""

    folder: Path
    meta: dict
    people: sim.People
    grid: np.ndarray
    book: dict
    response: np.ndarray
    start_ns: int

    @classmethod
    def load(cls, folder: str | Path) -> World:
        folder = Path(folder)
        gt = folder / S.GROUND_TRUTH_DIR
        if not (gt / "meta.json").exists():
            raise FileNotFoundError(f"{folder}: no {S.GROUND_TRUTH_DIR}/meta.json (not a simulated world)")
        meta = json.loads((gt / "meta.json").read_text())
        if "seed" not in meta or "people" not in meta or "brand_sends" not in meta:
            raise ValueError(f"{gt / 'meta.json'}: not written by `sendtime simulate` (no seed / people)")
        streams = np.random.SeedSequence(meta["seed"]).spawn(len(sim.STEPS) + 1)
        people = sim.sample_people(meta["people"], np.random.default_rng(streams[0]))
        book = sim.address_book(people, np.random.default_rng(streams[3]))
        truth = pd.read_parquet(gt / "people.parquet")
        if not truth["email"].fillna("").equals(pd.Series(book["email"]).fillna("")) or not np.array_equal(
            truth["timezone"].to_numpy(object), np.array(sim.TZ_NAMES, dtype=object)[people.tz]
        ):
            raise ValueError(
                f"{folder}: the world cannot be rebuilt from its seed (another simulator version?)"
            )
        start = pd.Timestamp(meta["start"])
        return cls(
            folder, meta, people, sim.activity_grid(people), book, np.load(gt / "response.npy"), start.value
        )

    def person_of(self, plan: pd.DataFrame) -> np.ndarray:
        """Person index of each plan row by the contact of its channel; -1 where none or unknown."""
        emails = {e: i for i, e in enumerate(self.book["email"]) if e}
        phones = {p: i for i, p in enumerate(self.book["phone"]) if p}
        email = plan[S.AUDIENCE_EMAIL].fillna("").astype(str).str.strip().str.lower()
        phone = plan[S.AUDIENCE_PHONE].fillna("").astype(str).str.strip()
        by_email = email.map(emails).fillna(-1).astype(int).to_numpy()
        by_phone = phone.map(phones).fillna(-1).astype(int).to_numpy()
        return np.where(plan[S.PLAN_CHANNEL] == S.EMAIL, by_email, by_phone)


def true_probability(world: World, person: np.ndarray, channel: np.ndarray, send_at: pd.Series) -> np.ndarray:
    """True P(click within 24 h) of each (person index, channel name, UTC send hour start); NaN where the
    person or the channel is unknown."""
    person = np.asarray(person)
    chan = pd.Series(np.asarray(channel, dtype=object)).map({c: i for i, c in enumerate(S.CHANNELS)})
    ok = (person >= 0) & chan.notna().to_numpy() & pd.Series(send_at).notna().to_numpy()
    out = np.full(len(person), np.nan)
    if ok.any():
        ns = pd.to_datetime(pd.Series(send_at)[ok], utc=True).astype("int64").to_numpy()
        who = person[ok]
        how = np.floor(sim.local_hour_of_week(ns, world.people.tz[who]) + 1e-9).astype(int) % S.HOURS_PER_WEEK
        out[ok] = world.response[who, chan[ok].astype(int).to_numpy(), how]
    return out


def follow_plan(
    world: str | Path | World,
    plan: pd.DataFrame,
    out: str | Path,
    seed: int = 0,
    never_sent_share: float = 0.0,
    history: bool = False,
) -> dict:
    """Send the plan to the world; write `out/events.parquet`. `plan`: as `report_join.read_plan` gives
    it (typed `send_at`, `planned`). Returns counts and each row's person and send flag."""
    world = world if isinstance(world, World) else World.load(world)
    rng = np.random.default_rng([seed, _STREAM])
    person = world.person_of(plan)
    planned = plan["planned"].to_numpy(bool) & (person >= 0)
    send = planned & (rng.random(len(plan)) >= never_sent_share)
    rows = np.flatnonzero(send)
    chan = plan[S.PLAN_CHANNEL].to_numpy(object)[rows]
    chan_i = np.where(chan == S.EMAIL, 0, 1)
    at = pd.to_datetime(plan[S.SEND_AT].iloc[rows], utc=True).astype("int64").to_numpy()
    t = (at - world.start_ns) / 1e9 + rng.uniform(0, 60, len(rows))  # queued up to a minute
    order = np.argsort(t, kind="stable")
    rate = world.meta.get("bounces", {}).get("soft_bounce_rate", 0.0)
    soft = rng.random(len(rows)) < rate if rate > 0 else None
    s = sim.behaviour(
        world.people,
        world.grid,
        person[rows][order],
        chan_i[order],
        t[order],
        np.zeros(len(rows), bool),
        world.start_ns,
        rng,
        None if soft is None else soft[order],
    )
    events = sim.events_frame(world.people, world.book, s, world.start_ns, rng)
    events[S.MESSAGE_ID] = f"plan{seed}-" + events[S.MESSAGE_ID].astype(str)  # apart from the history's ids
    if history:
        past = pd.read_parquet(world.folder / f"{S.EVENTS_TABLE}.parquet")
        events = pd.concat([past, events], ignore_index=True)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    events.to_parquet(folder / f"{S.EVENTS_TABLE}.parquet", index=False)
    last = pd.Timestamp(int(at.max()), tz="UTC") if len(at) else pd.Timestamp(world.meta["end"])
    return {
        "export_end": last + pd.Timedelta(hours=24, minutes=2),  # every outcome of the plan is in
        "planned": int(planned.sum()),
        "sent": int(send.sum()),
        "never_sent": int((planned & ~send).sum()),
        "events": len(events),
        "person": person,
        "sent_rows": send,
    }
