"""The synthetic world: contract shape, determinism, and that its ground truth really drives its events."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from phonenumbers import timezone as pn_timezone

from sendtime import schema as S
from sendtime.experiments import simulate as sim

N, DAYS, SEED = 2000, 28, 7


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    summary = sim.simulate(out, subscribers=N, days=DAYS, seed=SEED)
    truth = out / S.GROUND_TRUTH_DIR
    return {
        "dir": out,
        "summary": summary,
        "events": pd.read_parquet(out / f"{S.EVENTS_TABLE}.parquet"),
        "subs": pd.read_parquet(out / f"{S.SUBSCRIBERS_TABLE}.parquet"),
        "links": pd.read_parquet(out / f"{S.LINKS_TABLE}.parquet"),
        "people": pd.read_parquet(truth / "people.parquet"),
        "response": np.load(truth / "response.npy"),
        "meta": json.loads((truth / "meta.json").read_text()),
    }


def _normalise(address: str, channel: str) -> str:
    if channel == S.EMAIL:
        return address.strip().lower()
    num = phonenumbers.parse(address, "US")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _with_person(world, frame: pd.DataFrame) -> pd.DataFrame:
    """Maps every row's messy address to the person it belongs to, as a perfect resolver would."""
    people = world["people"]
    lookup = {(S.EMAIL, e): i for i, e in zip(people.person_id, people.email, strict=True) if e}
    lookup |= {(S.SMS, ph): i for i, ph in zip(people.person_id, people.phone, strict=True) if ph}
    out = frame.assign(ch=frame[S.CHANNEL].str.lower())
    pairs = out[["ch", S.ADDRESS]].drop_duplicates()
    pairs["person"] = [lookup[(c, _normalise(a, c))] for c, a in zip(pairs.ch, pairs[S.ADDRESS], strict=True)]
    out = out.merge(pairs, on=["ch", S.ADDRESS], how="left")
    out["tz"] = people.timezone.to_numpy()[out.person]
    return out


def _local(frame: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for tz, g in frame.groupby("tz"):
        loc = g[S.TIMESTAMP].dt.tz_convert(tz)
        parts.append(g.assign(how=loc.dt.dayofweek * 24 + loc.dt.hour + loc.dt.minute / 60, hod=loc.dt.hour))
    return pd.concat(parts)


def test_files_and_columns_follow_the_contract(world):
    ev, subs, links, people = world["events"], world["subs"], world["links"], world["people"]
    assert list(ev.columns) == [S.TIMESTAMP, S.CHANNEL, S.EVENT_TYPE, S.ADDRESS, S.MESSAGE_ID, S.BOUNCE_TYPE]
    bounce = ev[S.EVENT_TYPE] == S.BOUNCE
    assert (ev.loc[bounce, S.BOUNCE_TYPE] == S.HARD).all() and ev.loc[~bounce, S.BOUNCE_TYPE].isna().all()
    assert str(ev[S.TIMESTAMP].dt.tz) == "UTC" and ev[S.TIMESTAMP].is_monotonic_increasing
    assert set(ev[S.EVENT_TYPE]) == set(S.EVENT_TYPES)
    chan = ev[S.CHANNEL].str.lower()
    assert set(chan) == set(S.CHANNELS)
    assert 0.02 < (ev[S.CHANNEL] != chan).mean() < 0.10  # ~5% upper/mixed case
    assert not ((chan == S.SMS) & (ev[S.EVENT_TYPE] == S.OPEN)).any()
    sends = ev[ev[S.EVENT_TYPE] == S.SEND]
    assert sends[S.MESSAGE_ID].is_unique and ev[S.MESSAGE_ID].isin(sends[S.MESSAGE_ID]).all()

    assert list(subs.columns) == [S.ADDRESS, S.CHANNEL, S.TIMEZONE, S.SUBSCRIBED_AT]
    keys = [_normalise(a, c) for a, c in zip(subs[S.ADDRESS], subs[S.CHANNEL], strict=True)]
    assert len(set(keys)) == len(subs) == people.email.notna().sum() + people.phone.notna().sum()
    assert 0.4 < (subs[S.TIMEZONE] == "").mean() < 0.6
    assert set(subs[S.TIMEZONE]) - {""} <= set(people.timezone)
    assert list(links.columns) == [S.ADDRESS_A, S.ADDRESS_B, S.OBSERVED_AT]
    dual = (people.email.notna() & people.phone.notna()).sum()
    assert 0.75 * dual < len(links) < 0.95 * dual

    assert {
        "person_id",
        "email",
        "phone",
        "timezone",
        "email_engaged",
        "sms_engaged",
        "mpp",
        "archetype",
    } <= set(people.columns)
    assert (people.email.dropna() == people.email.dropna().str.strip().str.lower()).all()
    meta = world["meta"]
    assert meta["seed"] == SEED and meta["days"] == DAYS and meta["brand_sends"] == sim.BRAND_SENDS


def test_addresses_are_messy_but_resolvable(world):
    ev, links, people = world["events"], world["links"], world["people"]
    emails = ev.loc[ev[S.CHANNEL].str.lower() == S.EMAIL, S.ADDRESS]
    assert (emails != emails.str.lower()).mean() > 0.05
    assert (emails != emails.str.strip()).mean() > 0.03
    phones = ev.loc[ev[S.CHANNEL].str.lower() == S.SMS, S.ADDRESS]
    shapes = phones.str.replace(r"\d", "9", regex=True).unique()
    assert len(shapes) >= 4  # E.164, national, dashed, spaced international
    # links: other spellings than the canonical ones, yet the same people
    canon = set(people.email.dropna()) | set(people.phone.dropna())
    linked = pd.concat([links[S.ADDRESS_A], links[S.ADDRESS_B]])
    assert not linked.isin(canon).any()
    ch = np.where(linked.str.contains("@"), S.EMAIL, S.SMS)
    assert {_normalise(a, c) for a, c in zip(linked, ch, strict=True)} <= canon


def test_same_seed_same_world_other_seed_other_world(tmp_path):
    runs = {
        name: sim.simulate(tmp_path / name, subscribers=300, days=14, seed=s)
        for name, s in [("a", 5), ("b", 5)]
    }
    runs["c"] = sim.simulate(tmp_path / "c", subscribers=300, days=14, seed=6, progress=True)
    for name in (S.EVENTS_TABLE, S.SUBSCRIBERS_TABLE, S.LINKS_TABLE, f"{S.GROUND_TRUTH_DIR}/people"):
        a, b, c = (pd.read_parquet(tmp_path / run / f"{name}.parquet") for run in "abc")
        pd.testing.assert_frame_equal(a, b)
        assert not a.equals(c)
    a, b, c = (np.load(tmp_path / run / S.GROUND_TRUTH_DIR / "response.npy") for run in "abc")
    np.testing.assert_array_equal(a, b)
    assert a.shape == c.shape and not np.array_equal(a, c)
    assert runs["a"]["events_by_type"] == runs["b"]["events_by_type"]


def test_population_shares():
    p = sim.sample_people(3000, seed=1)
    email, sms, dual = p.has[:, 0], p.has[:, 1], p.has.all(1)
    assert abs((email & ~sms).mean() - 0.45) < 0.03 and abs((sms & ~email).mean() - 0.15) < 0.03
    unengaged_e, unengaged_s = ~p.engaged[:, 0], ~p.engaged[:, 1]
    assert abs(unengaged_e[email].mean() - 0.87) < 0.025
    assert abs(unengaged_s[sms].mean() - 0.66) < 0.04
    # correlated: independence would give 0.87
    assert unengaged_e[dual & unengaged_s].mean() > 0.91
    assert abs(p.mpp[email].mean() - 0.45) < 0.04 and not p.mpp[~email].any()
    assert 0.3 < (p.arch[dual, 0] != p.arch[dual, 1]).mean() < 0.5


def test_response_shape_range_and_missing_channels(world):
    r, people = world["response"], world["people"]
    assert r.shape == (N, 2, S.HOURS_PER_WEEK) and r.dtype == np.float32
    assert (r >= 0).all() and (r <= 1).all()
    assert (r[people.email.isna().to_numpy(), 0] == 0).all()
    assert (r[people.phone.isna().to_numpy(), 1] == 0).all()
    assert (r[people.email_bounces.to_numpy(), 0] == 0).all()
    for c, col in enumerate(("email_engaged", "sms_engaged")):
        engaged = people[col].to_numpy()
        has = (people.email if c == 0 else people.phone).notna().to_numpy()
        peak = r[engaged, c].max(1)
        assert 0.05 < np.median(peak) < 0.25
        assert r[engaged, c].mean() > 8 * r[has & ~engaged, c].mean() > 0


def test_response_timing_email_before_activity_sms_inside():
    """E-mail waits in the inbox (send just before the habit), SMS decays fast (send inside it)."""
    p = sim.sample_people(400, seed=3)
    grid = sim.activity_grid(p)
    r = sim.response_matrix(p, grid)
    activity = grid.reshape(p.n, 2, 7, 24, -1).mean(-1)[:, :, :5].mean(2)  # weekday hour-of-day profile
    best = r.reshape(p.n, 2, 7, 24)[:, :, :5].mean(2)
    lead = (activity.argmax(-1) - best.argmax(-1) + 12) % 24 - 12  # hours the best send precedes the peak
    email, sms = lead[p.has[:, 0], 0], lead[p.has[:, 1], 1]
    assert np.median(email) >= 1 and np.median(np.abs(sms)) == 0
    assert email.mean() > sms.mean() + 0.5


def test_clicks_agree_with_ground_truth(world):
    """The perfect-learner property: the truth predicts the clicks the world produced."""
    ev = _with_person(world, world["events"])
    end = pd.Timestamp(world["meta"]["end"]) - pd.Timedelta(hours=25)  # outcomes after the export are cut
    sends = _local(ev[(ev[S.EVENT_TYPE] == S.SEND) & (ev[S.TIMESTAMP] < end)])
    c = (sends.ch == S.SMS).to_numpy().astype(int)
    h = np.floor(sends.how.to_numpy()).astype(int)
    f = sends.how.to_numpy() - h
    r = world["response"]
    expected = (1 - f) * r[sends.person, c, h % 168] + f * r[sends.person, c, (h + 1) % 168]
    clicked = sends[S.MESSAGE_ID].isin(ev.loc[ev[S.EVENT_TYPE] == S.CLICK, S.MESSAGE_ID])
    for ch in S.CHANNELS:
        m = (sends.ch == ch).to_numpy()
        sd = np.sqrt((expected[m] * (1 - expected[m])).sum())
        assert abs(clicked[m].sum() - expected[m].sum()) < 4 * sd, ch
    rates = clicked.groupby(sends.ch).mean()
    assert 0.01 < rates[S.EMAIL] < 0.03 and 0.03 < rates[S.SMS] < 0.08


def test_phone_numbers_are_valid_and_match_timezone(world):
    people = world["people"].dropna(subset=["phone"])
    assert people.phone.is_unique and len(people) > 100
    for phone, tz in zip(people.phone, people.timezone, strict=True):
        num = phonenumbers.parse(phone)
        assert phonenumbers.is_valid_number(num), phone
        assert phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164) == phone
        assert tz in pn_timezone.time_zones_for_number(num), (phone, tz)
    assert set(people.timezone) > {"America/New_York", "Europe/London"}


def test_mpp_readers_open_every_delivered_email_within_90s(world):
    ev = _with_person(world, world["events"])
    mail = ev[ev.ch == S.EMAIL]
    deliv = mail[mail[S.EVENT_TYPE] == S.DELIVERED][[S.MESSAGE_ID, S.TIMESTAMP, "person"]]
    opens = mail[mail[S.EVENT_TYPE] == S.OPEN][[S.MESSAGE_ID, S.TIMESTAMP]]
    lag = deliv.merge(opens, on=S.MESSAGE_ID, suffixes=("", "_open"), how="left")
    lag["s"] = (lag[f"{S.TIMESTAMP}_open"] - lag[S.TIMESTAMP]).dt.total_seconds()
    fast = lag.assign(ok=lag.s.between(0, 90)).groupby([S.MESSAGE_ID, "person"]).ok.any().reset_index()
    mpp = world["people"].mpp.to_numpy()[fast.person]
    assert mpp.sum() > 500 and fast.ok[mpp].all()
    assert fast.ok[~mpp].mean() < 0.1


def test_sends_mostly_at_brand_times_but_at_many_local_hours(world):
    ev = _with_person(world, world["events"])
    sends = _local(ev[ev[S.EVENT_TYPE] == S.SEND])
    utc = sends[S.TIMESTAMP]
    brand = np.zeros(len(sends), bool)
    for ch, cfg in sim.BRAND_SENDS.items():
        brand |= (
            (sends.ch == ch)
            & utc.dt.weekday.isin(cfg["weekdays"])
            & (utc.dt.hour == cfg["utc_hour"])
            & (utc.dt.minute < 15)
        ).to_numpy()
    assert 0.6 < brand.mean() < 0.8
    assert sends.loc[~brand, "hod"].nunique() == 24
    assert sends.loc[~brand, "how"].astype(int).nunique() > 120


def test_bounces_and_unsubscribes_end_a_channel(world):
    ev = world["events"].assign(ch=world["events"][S.CHANNEL].str.lower())
    ev["key"] = [_normalise(a, c) for a, c in zip(ev[S.ADDRESS], ev.ch, strict=True)]
    stops = ev[ev[S.EVENT_TYPE].isin([S.BOUNCE, S.UNSUBSCRIBE])].groupby("key")[S.TIMESTAMP].min()
    assert len(stops) > 10
    sends = ev[ev[S.EVENT_TYPE] == S.SEND]
    later = sends[S.TIMESTAMP] > sends.key.map(stops)
    assert not later.any()
    assert (
        ev[ev[S.EVENT_TYPE] == S.BOUNCE][S.MESSAGE_ID]
        .isin(ev[ev[S.EVENT_TYPE] == S.DELIVERED][S.MESSAGE_ID])
        .sum()
        == 0
    )


def test_local_hour_of_week_is_dst_correct():
    ny, berlin = sim.TZ_NAMES.index("America/New_York"), sim.TZ_NAMES.index("Europe/Berlin")
    t = pd.to_datetime(["2026-10-26T14:00Z", "2026-11-02T14:00Z", "2026-10-19T14:00Z", "2026-10-26T14:00Z"])
    how = sim.local_hour_of_week(t.asi8, np.array([ny, ny, berlin, berlin]))
    np.testing.assert_allclose(how, [10, 9, 16, 15])  # Mondays: EDT then EST; CEST then CET


def test_transient_bounces_are_soft_and_the_address_stays_alive(tmp_path):
    sim.simulate(
        tmp_path, subscribers=500, days=DAYS, seed=SEED, soft_bounce_rate=0.05, untyped_bounce_share=0.5
    )
    ev = pd.read_parquet(tmp_path / f"{S.EVENTS_TABLE}.parquet")
    people = pd.read_parquet(tmp_path / S.GROUND_TRUTH_DIR / "people.parquet")
    ev = _with_person({"people": people}, ev)
    bounces = ev[ev[S.EVENT_TYPE] == S.BOUNCE]
    sends = ev[(ev[S.EVENT_TYPE] == S.SEND) & (ev.ch == S.EMAIL)]
    assert (bounces.ch == S.EMAIL).all()  # SMS has no transient bounces in this world
    typed = bounces[S.BOUNCE_TYPE].dropna()
    assert set(typed) == {S.SOFT, S.HARD} and 0.4 < bounces[S.BOUNCE_TYPE].isna().mean() < 0.6
    soft_share = (typed == S.SOFT).sum() / (1 - bounces[S.BOUNCE_TYPE].isna().mean()) / len(sends)
    assert 0.035 < soft_share < 0.065
    # a soft-bounced e-mail is never delivered, opened or clicked; the person gets e-mails after it
    answered = ev[ev[S.EVENT_TYPE].isin([S.DELIVERED, S.OPEN, S.CLICK])][S.MESSAGE_ID]
    soft = bounces[bounces[S.BOUNCE_TYPE] == S.SOFT]
    assert not soft[S.MESSAGE_ID].isin(answered).any()
    last_send = sends.groupby("person")[S.TIMESTAMP].max()
    assert (soft[S.TIMESTAMP].to_numpy() < last_send.reindex(soft.person).to_numpy()).mean() > 0.8
    assert not people.loc[soft.person.unique(), "email_bounces"].any()  # soft bounces hit live addresses
    # the ground truth knows that a share of e-mails never arrives
    base = sim.simulate(tmp_path / "plain", subscribers=500, days=DAYS, seed=SEED)
    plain = np.load(base["paths"]["response"])
    with_soft = np.load(tmp_path / S.GROUND_TRUTH_DIR / "response.npy")
    np.testing.assert_allclose(with_soft[:, 0], plain[:, 0] * 0.95, rtol=1e-6)
    np.testing.assert_array_equal(with_soft[:, 1], plain[:, 1])


def test_bounce_options_outside_0_to_1_are_refused(tmp_path):
    with pytest.raises(ValueError, match="soft_bounce_rate"):
        sim.simulate(tmp_path, subscribers=10, days=7, soft_bounce_rate=1.5)
