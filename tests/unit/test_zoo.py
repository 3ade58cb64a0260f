"""The zoo's generators: the contract's columns, the ground truth's shape and meaning, and that each
structural switch does what it claims (tiny, seeded worlds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest

from sendtime import schema as S
from sendtime.experiments.zoo import WORLDS, generate, world
from sendtime.experiments.zoo.__main__ import main as zoo_main
from sendtime.experiments.zoo.history import BOUNCE_TYPE, local_how
from sendtime.experiments.zoo.people import WEEK_BINS, sample_population
from sendtime.features.load import load_folder
from sendtime.training.baselines import exposure_corrected_scores


def _read(folder: Path, table: str) -> pd.DataFrame:
    for ext, reader in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
        path = folder / f"{table}{ext}"
        if path.exists():
            frame = reader(path, keep_default_na=False) if ext == ".csv" else reader(path)
            return frame
    raise FileNotFoundError(folder / table)


def _canonical(addresses: pd.Series, channel: pd.Series) -> list[str]:
    return [
        a.strip().lower()
        if c == 0
        else phonenumbers.format_number(phonenumbers.parse(a, "US"), phonenumbers.PhoneNumberFormat.E164)
        for a, c in zip(addresses, channel, strict=True)
    ]


def _events(folder: Path) -> pd.DataFrame:
    ev = _read(folder, S.EVENTS_TABLE)
    ev[S.TIMESTAMP] = pd.to_datetime(ev[S.TIMESTAMP], utc=True)
    ev["ch"] = (ev[S.CHANNEL].str.lower() == S.SMS).astype(int)
    return ev


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Every world at 250 people x 4 weeks, seed 5, written once for the module."""
    root = tmp_path_factory.mktemp("zoo")
    return {
        name: (root / name, generate(name, root / name, subscribers=250, weeks=4, seed=5)) for name in WORLDS
    }


def test_at_least_five_worlds_each_documented():
    assert len(WORLDS) >= 5
    assert all(w.about and w.slots for w in WORLDS.values())
    with pytest.raises(ValueError, match="unknown zoo world 'nope'"):
        world("nope")


@pytest.mark.parametrize("name", list(WORLDS))
def test_columns_and_vocabularies_follow_the_contract(made, name):
    folder, _ = made[name]
    ev = _events(folder)
    assert set(S.EVENTS_REQUIRED) <= set(ev.columns)
    assert S.MESSAGE_ID in ev.columns and BOUNCE_TYPE in ev.columns
    assert set(ev[S.EVENT_TYPE]) <= set(S.EVENT_TYPES)
    assert set(ev[S.CHANNEL].str.lower()) <= set(S.CHANNELS)
    assert not ((ev["ch"] == 1) & (ev[S.EVENT_TYPE] == S.OPEN)).any()  # SMS has no opens
    bounce = ev[S.EVENT_TYPE] == S.BOUNCE
    assert set(ev.loc[bounce, BOUNCE_TYPE]) <= {"hard", "soft"} and bounce.any()
    assert (ev.loc[~bounce, BOUNCE_TYPE] == "").all()
    data = load_folder(folder)  # the project's own loader takes it as it is
    assert len(data.rejects) == 0
    assert len(data.events) == len(ev)


@pytest.mark.parametrize("name", list(WORLDS))
def test_ground_truth_shape_and_meaning(made, name):
    folder, _ = made[name]
    gt = folder / S.GROUND_TRUTH_DIR
    people = pd.read_parquet(gt / "people.parquet")
    response = np.load(gt / "response.npy")
    assert response.shape == (250, 2, S.HOURS_PER_WEEK) and response.dtype == np.float32
    assert (response >= 0).all() and (response <= 1).all()
    assert {"email", "phone", "timezone"} <= set(people.columns)
    assert (response[people["email"].isna().to_numpy(), 0] == 0).all()  # no address, nothing to gain
    assert (response[people["phone"].isna().to_numpy(), 1] == 0).all()
    assert (response[people["sms_stopped"].to_numpy(), 1] == 0).all()
    assert response.max(axis=2).mean() > 0.0


def test_truth_is_the_rate_the_events_show(tmp_path):
    """The oracle's probability at each send's local hour matches the clicks within 24 h, per channel."""
    generate("inbox", tmp_path, subscribers=900, weeks=4, seed=2)
    ev = _events(tmp_path)
    people = pd.read_parquet(tmp_path / S.GROUND_TRUTH_DIR / "people.parquet")
    response = np.load(tmp_path / S.GROUND_TRUTH_DIR / "response.npy")
    sends = ev[ev[S.EVENT_TYPE] == S.SEND].set_index(S.MESSAGE_ID)
    who = {a: i for i, a in enumerate(people["email"]) if a} | {
        a: i for i, a in enumerate(people["phone"]) if a
    }
    per = np.array([who[a] for a in _canonical(sends[S.ADDRESS], sends["ch"])])
    ns = sends[S.TIMESTAMP].dt.as_unit("ns").astype("int64").to_numpy()
    how = np.floor(local_how(ns, people["timezone"].to_numpy(object)[per])).astype(int)
    truth = response[per, sends["ch"].to_numpy(), how]
    first_click = ev[ev[S.EVENT_TYPE] == S.CLICK].groupby(S.MESSAGE_ID)[S.TIMESTAMP].min()
    within = ((first_click.reindex(sends.index) - sends[S.TIMESTAMP]) < pd.Timedelta(hours=24)).to_numpy()
    judged = (sends[S.TIMESTAMP] < ev[S.TIMESTAMP].max() - pd.Timedelta(hours=24)).to_numpy()
    judged &= ~people["email_stopped"].to_numpy()[per] & ~people["sms_stopped"].to_numpy()[per]
    for c in (0, 1):
        m = judged & (sends["ch"].to_numpy() == c)
        expected, seen = truth[m].mean(), within[m].mean()
        se = np.sqrt(expected * (1 - expected) / m.sum())
        assert seen == pytest.approx(expected, abs=4 * se + 0.002), (c, m.sum())


def test_events_only_has_no_subscribers_links_or_machine_flag(made):
    folder, _ = made["events_only"]
    assert (folder / "events.csv").exists()
    assert not list(folder.glob("subscribers.*")) and not list(folder.glob("identity_links.*"))
    assert S.MACHINE_OPEN not in _events(folder).columns
    assert S.MACHINE_OPEN in _events(made["inbox"][0]).columns


def test_sms_is_seen_within_the_hour_email_is_read_hours_later(made):
    ev = _events(made["inbox"][0])
    sends = ev[ev[S.EVENT_TYPE] == S.SEND].set_index(S.MESSAGE_ID)[S.TIMESTAMP]
    human_open = (
        ev[(ev[S.EVENT_TYPE] == S.OPEN) & ~ev[S.MACHINE_OPEN]].groupby(S.MESSAGE_ID)[S.TIMESTAMP].min()
    )
    sms_click = ev[(ev[S.EVENT_TYPE] == S.CLICK) & (ev["ch"] == 1)].groupby(S.MESSAGE_ID)[S.TIMESTAMP].min()
    open_h = ((human_open - sends.reindex(human_open.index)).dt.total_seconds() / 3600).to_numpy()
    sms_h = ((sms_click - sends.reindex(sms_click.index)).dt.total_seconds() / 3600).to_numpy()
    assert np.median(sms_h) < 1.0 and np.quantile(sms_h, 0.75) < 1.5
    assert np.median(open_h) > 3.0
    assert (open_h > 12).mean() > 0.2  # often the next day


def test_fixed_brand_send_times_dominate_sends(made):
    w = WORLDS["fixed_slots"]
    ev = _events(made["fixed_slots"][0])
    sends = ev[ev[S.EVENT_TYPE] == S.SEND]
    local = sends[S.TIMESTAMP].dt.tz_convert(w.brand_zone)
    minute = local.dt.hour * 60 + local.dt.minute
    on_slot = np.zeros(len(sends), bool)
    for c, name in enumerate(S.CHANNELS):
        for slot in w.slots[name]:
            on_slot |= (
                (sends["ch"].to_numpy() == c)
                & local.dt.weekday.isin(slot.weekdays).to_numpy()
                & ((minute - slot.hour * 60) % 1440 < 16).to_numpy()
            )
    assert on_slot.mean() > 0.85
    assert on_slot.mean() < 1.0  # and a few triggered sends at personal moments
    assert all(2 <= len(w.slots[c]) <= 3 for c in S.CHANNELS)  # two or three brand times per channel


def test_forty_percent_of_zones_unknown(made):
    subs = _read(made["inbox"][0], S.SUBSCRIBERS_TABLE)
    assert (subs[S.TIMEZONE] == "").mean() == pytest.approx(0.4, abs=0.07)


def test_international_numbers_are_valid_and_in_their_zone_country(made):
    people = pd.read_parquet(made["global"][0] / S.GROUND_TRUTH_DIR / "people.parquet")
    phones = people.dropna(subset=["phone"])
    regions = set()
    for e164 in phones["phone"]:
        num = phonenumbers.parse(e164)
        assert phonenumbers.is_valid_number(num), e164
        regions.add(phonenumbers.region_code_for_number(num))
    assert {"GB", "DE", "AU", "BR", "IN"} <= regions


def test_messy_world_bounces_softly_unsubscribes_and_opens_by_machine_unflagged(made):
    ev = _events(made["messy"][0])
    assert S.MACHINE_OPEN not in ev.columns
    soft = ev[(ev[S.EVENT_TYPE] == S.BOUNCE) & (ev[BOUNCE_TYPE] == "soft")]
    assert len(soft) > 20
    key = pd.Series(_canonical(ev[S.ADDRESS], ev["ch"]), index=ev.index)
    later = ev[ev[S.EVENT_TYPE] == S.DELIVERED].assign(k=key).groupby("k")[S.TIMESTAMP].max()
    assert (later.reindex(key[soft.index]).to_numpy() > soft[S.TIMESTAMP].to_numpy()).mean() > 0.5
    unsub = ev[ev[S.EVENT_TYPE] == S.UNSUBSCRIBE]
    assert len(unsub) > 5
    last_send = ev[ev[S.EVENT_TYPE] == S.SEND].assign(k=key).groupby("k")[S.TIMESTAMP].max()
    stop = unsub.assign(k=key[unsub.index]).groupby("k")[S.TIMESTAMP].min()
    assert (last_send.reindex(stop.index) < stop).all()  # nothing is sent after an unsubscribe
    # machine opens: the same message opened within two minutes of its delivery, with no flag to say so
    deliv = ev[ev[S.EVENT_TYPE] == S.DELIVERED].set_index(S.MESSAGE_ID)[S.TIMESTAMP]
    opens = ev[ev[S.EVENT_TYPE] == S.OPEN]
    fast = (opens[S.TIMESTAMP].to_numpy() - deliv.reindex(opens[S.MESSAGE_ID]).to_numpy()) < np.timedelta64(
        121, "s"
    )
    assert fast.mean() > 0.3


def test_sms_habit_switch_and_weekend_shift_switch():
    rng = np.random.default_rng(0)
    same = sample_population(world("sms_first", channel_mix=(0, 0, 1), sms_habit_differs=0.0), 400, rng)
    own = sample_population(world("sms_first", channel_mix=(0, 0, 1), sms_habit_differs=1.0), 400, rng)

    def agree(p):  # weekday peak of the inbox habit vs the SMS habit, within an hour (circular)
        d = np.abs(p.read[:, :288].argmax(1) - p.mood[:, :288].argmax(1))
        return (np.minimum(d, 288 - d) <= 12).mean()

    assert agree(same) > 0.85 and agree(own) < 0.5
    assert not same.sms_own_habit.any() and own.sms_own_habit.all()
    p = sample_population(world("inbox", weekend_shift_share=0.5), 400, rng)
    weekday, saturday = p.read[:, :288], p.read[:, 5 * 288 : 6 * 288]
    moved = ~np.isclose(weekday, saturday, rtol=1e-4).all(1)
    assert (moved == p.shifted).all() and 0.4 < p.shifted.mean() < 0.6
    assert p.read.shape == (400, WEEK_BINS)


def test_habits_are_continuous_not_archetypes():
    p = sample_population(world("inbox"), 500, np.random.default_rng(1))
    peak_bin = p.read[:, :288].argmax(1)
    assert len(np.unique(peak_bin // 12)) >= 20  # peaks at (nearly) every hour of the day
    assert set(np.unique(p.bumps)) == {1, 2, 3}
    assert (p.read.min(1) > 0).all()  # a floor of background activity


def test_same_seed_same_world_and_the_cli(tmp_path):
    a = generate("sms_first", tmp_path / "a", subscribers=80, weeks=3, seed=9)
    assert zoo_main(["--world", "sms_first", "--out", str(tmp_path / "b"), "--subscribers", "80",
                     "--weeks", "3", "--seed", "9"]) == 0  # fmt: skip
    ea, eb = _events(tmp_path / "a"), _events(tmp_path / "b")
    pd.testing.assert_frame_equal(ea, eb)
    assert a["sends"] == int((ea[S.EVENT_TYPE] == S.SEND).sum())
    paired = generate("events_only", tmp_path / "d", subscribers=80, weeks=3, seed=9)
    other = generate("inbox", tmp_path / "e", subscribers=80, weeks=3, seed=9)
    truth = {k: np.load(tmp_path / k / S.GROUND_TRUTH_DIR / "response.npy") for k in "abde"}
    np.testing.assert_array_equal(truth["d"], truth["e"])  # events_only: inbox's people, another export
    assert paired["sends"] == other["sends"]
    assert not np.array_equal(truth["a"], truth["e"])  # other worlds draw their own people
    with pytest.raises(ValueError, match="at least 3 weeks"):
        generate("inbox", tmp_path / "c", subscribers=10, weeks=2)


def test_exposure_corrected_histogram_divides_by_sends():
    """One person, e-mail: 4 sends at hour 10 answered twice, 1 send at hour 50 answered once."""
    engaged = np.zeros((1, 2, S.HOURS_PER_WEEK), np.float32)
    sent = np.zeros_like(engaged)
    engaged[0, 0, 10], sent[0, 0, 10] = 2, 4
    engaged[0, 0, 50], sent[0, 0, 50] = 1, 1
    score = exposure_corrected_scores(engaged, sent)
    rate = (3 + 1 / S.HOURS_PER_WEEK) / (5 + 1)
    assert score[0, 0, 10] == pytest.approx((1.0 + rate) / (2.0 + 1))  # blurred: half of each count
    assert score[0, 0, 50] == pytest.approx((0.5 + rate) / (0.5 + 1))
    assert score[0, 0, 50] > score[0, 0, 10]  # more engagements at 10, but fewer per send
    assert score[0, 0, 100] == pytest.approx(rate)  # no sends: the person's own rate


def test_exposure_histograms_count_an_answer_at_its_send_hour():
    """Berlin: two sends Monday 10:00 local (08:00 UTC); a click at 13:00 answers the first; an open tied
    to no send counts at its own hour (Tuesday 09:00); nothing at or after as_of counts."""
    from sendtime.features.prepare import FeatureBase
    from sendtime.training.baselines import exposure_histograms

    utc = pd.to_datetime(
        ["2026-09-07 08:00", "2026-09-14 08:00", "2026-09-07 11:00", "2026-09-08 07:00", "2026-09-21 08:00"],
        utc=True,
    )
    sends = pd.DataFrame({"sub": [0, 0, 0], "channel": [0, 0, 0], "at": utc[[0, 1, 4]], "how": [10, 10, 10]})
    eng = pd.DataFrame(
        {
            "sub": [0, 0],
            "channel": [0, 0],
            "at": utc[[2, 3]],
            "how": [13, 33],
            "kind": [1, 0],
            "sent_at": pd.Series([utc[0], pd.NaT], dtype="datetime64[ns, UTC]"),
        }
    )
    base = FeatureBase(
        subscribers=pd.DataFrame({"subscriber_id": ["a"], "timezone": ["Europe/Berlin"]}),
        addresses=pd.DataFrame(),
        sends=sends,
        engagements=eng,
        optouts=pd.DataFrame(),
        has_sends=True,
    )
    engaged, sent = exposure_histograms(base, pd.Timestamp("2026-09-20", tz="UTC"))
    assert sent[0, 0, 10] == 2 and sent.sum() == 2
    assert engaged[0, 0, 10] == 1 and engaged[0, 0, 33] == 1 and engaged.sum() == 2
