"""Profiles on a simulated world: point in time, privacy and ranges, and agreement with the truth."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.features import shrinkage as shrinkage_module
from sendtime.features.exposure import delay_kernel, evidence
from sendtime.features.heldout import heldout_blocks
from sendtime.features.load import load_folder
from sendtime.features.prepare import FeatureBase, build_feature_base
from sendtime.features.profiles import build_profiles
from sendtime.features.strengths import DEFAULT
from sendtime.workflows import capture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base(small_world, test_settings) -> FeatureBase:
    return build_feature_base(load_folder(small_world, test_settings.data), test_settings)


def _as_of(base: FeatureBase) -> pd.Timestamp:
    return base.span[1] - pd.Timedelta(days=14)


def test_a_later_event_changes_nothing(base, test_settings):
    as_of = _as_of(base)
    before = build_profiles(base, as_of, test_settings.profiles)
    later = base.engagements.iloc[:50].copy()
    later["at"] = as_of + pd.Timedelta(hours=1)
    later["how"] = (later["how"] + 5) % S.HOURS_PER_WEEK
    sends = base.sends.iloc[:50].copy()
    sends["at"] = as_of + pd.Timedelta(minutes=30)
    grown = FeatureBase(
        subscribers=base.subscribers,
        addresses=base.addresses,
        sends=pd.concat([base.sends, sends]),
        engagements=pd.concat([base.engagements, later]),
        optouts=base.optouts,
        has_sends=base.has_sends,
    )
    after = build_profiles(grown, as_of, test_settings.profiles)
    assert after.shrinkage == before.shrinkage  # chosen on held-out weeks before as_of only
    np.testing.assert_array_equal(after.shape, before.shape)
    np.testing.assert_array_equal(after.response, before.response)
    pd.testing.assert_frame_equal(after.table, before.table)
    # and the extra events do matter once they are in the past
    moved = build_profiles(grown, as_of + pd.Timedelta(days=1), test_settings.profiles, before.shrinkage)
    assert not np.array_equal(moved.shape, before.shape)


def test_held_out_blocks_are_contiguous_newest_first_and_inside_the_history(base, test_settings):
    as_of = _as_of(base)
    blocks = heldout_blocks(base, as_of, test_settings.profiles)
    assert 1 < len(blocks) <= test_settings.profiles.holdout_folds
    assert blocks[0][1] == as_of
    for (lo, hi), (lo2, hi2) in zip(blocks, blocks[1:], strict=False):
        assert hi2 == lo and hi2 - lo2 == hi - lo
    assert all(hi > base.span[0] for _, hi in blocks)


def test_evidence_outside_a_block_and_of_a_sample_match_the_whole(base):
    """The search predicts each block from everything else: the evidence around a block and in it add
    up to the whole history's, and a held-out sample's evidence is exactly those rows of everybody's."""
    as_of = _as_of(base)
    kernel = delay_kernel(base.engagements[base.engagements["at"] < as_of])
    lo, hi = as_of - pd.Timedelta(days=28), as_of - pd.Timedelta(days=14)
    whole = evidence(base, kernel, as_of)
    around = evidence(base, kernel, as_of, weigh_from=lo, skip=(lo, hi))
    inside = evidence(base, kernel, hi, start=lo)
    np.testing.assert_allclose(around.hourly + inside.hourly, whole.hourly)
    assert around.hourly.sum() > 0 and inside.hourly.sum() > 0
    rows = np.flatnonzero(inside.counts[:, 1] > 0)[::3]
    sample = evidence(base, kernel, hi, start=lo, subs=rows)
    for name in ("corrected", "exposure", "hourly", "triggers"):
        np.testing.assert_allclose(getattr(sample, name), getattr(inside.take(rows), name), rtol=1e-12)
    weighted = evidence(base, kernel, as_of, weigh_from=lo, half_life=30.0, skip=(lo, hi))
    # recency reweights a person's events (nearer the block counts more) but never shrinks their count
    np.testing.assert_allclose(weighted.counts, around.counts, rtol=1e-9)
    assert not np.allclose(weighted.hourly, around.hourly)


def test_strengths_are_chosen_on_as_many_blocks_as_a_channel_needs(base, test_settings, monkeypatch):
    """A small world's SMS needs every block; with people to spare, the newest block is enough."""
    as_of = _as_of(base)
    chosen = build_profiles(base, as_of, test_settings.profiles).shrinkage
    n_blocks = len(heldout_blocks(base, as_of, test_settings.profiles))
    assert chosen[S.SMS].heldout_folds == n_blocks
    monkeypatch.setattr(shrinkage_module, "MAX_HELDOUT_ROWS", 20)
    monkeypatch.setattr(shrinkage_module, "ENOUGH_HELDOUT_ROWS", 20)
    few = build_profiles(base, as_of, test_settings.profiles).shrinkage
    for c in S.CHANNELS:
        assert few[c].heldout_folds == 1 and few[c].heldout_rows == 20


def test_weekend_shift_follows_the_weekend_habits(base, test_settings):
    """Move every weekend event two hours earlier and the chosen shift moves with it."""
    as_of = _as_of(base)
    before = build_profiles(base, as_of, test_settings.profiles).shrinkage[S.EMAIL].weekend_shift

    def earlier(frame: pd.DataFrame) -> pd.DataFrame:
        how = frame["how"].to_numpy()
        day, hour = how // 24, how % 24
        return frame.assign(how=np.where(day >= 5, day * 24 + (hour - 2) % 24, how).astype(how.dtype))

    moved = FeatureBase(
        subscribers=base.subscribers,
        addresses=base.addresses,
        sends=earlier(base.sends),
        engagements=earlier(base.engagements),
        optouts=base.optouts,
        has_sends=base.has_sends,
    )
    after = build_profiles(moved, as_of, test_settings.profiles).shrinkage
    print(f"weekend shift {before} -> {after[S.EMAIL].weekend_shift}")
    assert before >= 1  # the simulator's people keep their habits 1-2.5 h later at the weekend
    assert after[S.EMAIL].weekend_shift == after[S.SMS].weekend_shift == before - 2


def test_too_few_people_to_choose_keep_the_defaults_and_no_weekend_shift(base, test_settings):
    few = base.subscribers.index[:6]
    tiny = FeatureBase(
        subscribers=base.subscribers,
        addresses=base.addresses,
        sends=base.sends[base.sends["sub"].isin(few)],
        engagements=base.engagements[base.engagements["sub"].isin(few)],
        optouts=base.optouts,
        has_sends=base.has_sends,
    )
    chosen = build_profiles(tiny, _as_of(base), test_settings.profiles).shrinkage
    for c in S.CHANNELS:
        assert chosen[c].heldout_rows == 0
        assert chosen[c].weekend_shift == 0
        assert chosen[c].alpha_daily == DEFAULT.alpha_daily


def test_profile_table_holds_no_address_and_values_in_range(base, small_world, test_settings):
    profiles = build_profiles(base, _as_of(base), test_settings.profiles)
    table = profiles.table
    frames = [table.select_dtypes(exclude="number"), profiles.addresses]
    people = pd.read_parquet(small_world / S.GROUND_TRUTH_DIR / "people.parquet")
    raw = set(people["email"].dropna()) | set(people["phone"].dropna())
    flat = {str(v) for f in frames for v in f.to_numpy().ravel()}
    assert not (flat & raw), "a raw address leaked into the profiles"
    assert not any("@" in v for v in flat)
    assert not any(re.fullmatch(r"\+?\d{8,15}", v) for v in flat)
    assert table[S.SUBSCRIBER_ID].str.fullmatch(r"[0-9a-f]{20}").all()
    assert table[S.SUBSCRIBER_ID].is_unique
    np.testing.assert_allclose(profiles.shape.sum(axis=-1), 1.0, rtol=1e-5)
    assert (profiles.shape >= 0).all() and (profiles.response > 0).all()
    for c in S.CHANNELS:
        for col in (f"{c}_click_rate", f"{c}_engage_rate", f"{c}_data_weight"):
            assert table[col].between(0, 1).all(), col
        assert (table[f"{c}_recency_days"].dropna() >= 0).all()
    assert set(table[f"{S.EMAIL}_pattern_source"]) <= {
        "personal history",
        "linked profile",
        "cohort prior",
        "population prior",
    }


def test_ids_are_stable_and_salted(small_world, test_settings, monkeypatch):
    data = load_folder(small_world, test_settings.data)
    first = build_feature_base(data, test_settings).subscribers[S.SUBSCRIBER_ID]
    again = build_feature_base(data, test_settings).subscribers[S.SUBSCRIBER_ID]
    pd.testing.assert_series_equal(first, again)
    monkeypatch.setenv(test_settings.data.salt_env, "another-salt")
    salted = build_feature_base(data, test_settings).subscribers[S.SUBSCRIBER_ID]
    assert not set(first) & set(salted)


def _hour_capture(
    estimate: np.ndarray,
    rows: np.ndarray,
    gt: capture.GroundTruth,
    how: np.ndarray,
    truth: np.ndarray,
    mask: np.ndarray,
    c: int,
) -> float:
    sel = mask[:, c].any(axis=1) & (rows >= 0)
    est = np.where(mask[sel, c], estimate[rows[sel][:, None], c, how[sel]], -np.inf)
    t, m = truth[sel, c], mask[sel, c]
    first = t[np.arange(len(t)), m.argmax(axis=1)].sum()
    best = np.where(m, t, -np.inf).max(axis=1).sum()
    return float((t[np.arange(len(t)), est.argmax(axis=1)].sum() - first) / (best - first))


def test_profile_top_hours_beat_a_raw_histogram(base, small_world, test_settings):
    """Against the simulator's truth, the exposure-corrected, shrunk profile picks better hours than the
    raw open-hour histogram (which mostly shows when the brand sent)."""
    from sendtime.features.model_features import FEATURES
    from sendtime.serving.predictor import Predictor
    from sendtime.training.baselines import raw_histograms

    class _NoModel:  # resolution and local hours only: no scores are asked for
        def feature_name(self):
            return FEATURES

    as_of = _as_of(base)
    profiles = build_profiles(base, as_of, test_settings.profiles)
    raw = (
        raw_histograms(base, as_of)
        + np.random.default_rng(0).random((len(profiles), 2, S.HOURS_PER_WEEK)) * 1e-6
    )
    gt = capture.GroundTruth.load(small_world)
    predictor = Predictor(_NoModel(), profiles, test_settings)
    ours, theirs = [], []
    for day in range(7):
        start = as_of.ceil("D") + pd.Timedelta(days=day, hours=14)
        audience, hours, how = capture.audience_grids(predictor, gt, start, 24)
        mask, truth = capture.feasible(predictor, audience, hours), capture.true_values(gt, hours)
        for c in range(2):
            ours.append(_hour_capture(profiles.response, audience.rows[:, c], gt, how, truth, mask, c))
            theirs.append(_hour_capture(raw, audience.rows[:, c], gt, how, truth, mask, c))
    print(f"hour capture: profile {np.mean(ours):.3f}, raw histogram {np.mean(theirs):.3f}")
    assert np.mean(ours) > np.mean(theirs) + 0.05


CONVERGENCE_EVENTS = (2, 5, 10, 20, 50, 100)
PEAKS = (6, 9, 12, 15)  # the daytime people's own peak hours, one each per count of events


def _convergence_world(folder, years: float = 10.0, seed: int = 0) -> tuple[pd.Timestamp, dict[str, int]]:
    """An opens-only export over `years`: a cohort of 400 evening people (each their own peak at 17-23 h)
    and, per count in CONVERGENCE_EVENTS, four daytime people (peaks in PEAKS), whose events are drawn
    from their curve and spread over the same years.
    Returns the end of the history and each daytime person's address -> (event count, peak hour)."""
    rng = np.random.default_rng(seed)
    start, end = (
        pd.Timestamp("2020-01-06", tz="UTC"),
        pd.Timestamp("2020-01-06", tz="UTC") + pd.Timedelta(days=365 * years),
    )

    def events(address: str, n: int, peak: float) -> pd.DataFrame:
        day = rng.uniform(0, (end - start).days - 1, n).astype(int)
        hour = np.round(rng.normal(peak, 1.2, n)) % 24
        at = (
            start
            + pd.to_timedelta(day, "D")
            + pd.to_timedelta(hour, "h")
            + pd.to_timedelta(rng.integers(0, 60, n), "m")
        )
        return pd.DataFrame({S.TIMESTAMP: at.strftime("%Y-%m-%dT%H:%M:%SZ"), S.ADDRESS: address})

    frames, daytime = [], {}
    for k in range(400):
        peak = rng.uniform(17, 23)
        frames.append(events(f"c{k}@x.invalid", int(rng.integers(10, 60)), peak))
    for n in CONVERGENCE_EVENTS:
        for k in range(4):
            daytime[f"m{n}-{k}@x.invalid"] = (n, PEAKS[k])
            frames.append(events(f"m{n}-{k}@x.invalid", n, PEAKS[k]))
    ev = pd.concat(frames, ignore_index=True).assign(**{S.CHANNEL: S.EMAIL, S.EVENT_TYPE: S.OPEN})
    folder.mkdir(parents=True, exist_ok=True)
    ev.to_csv(folder / "events.csv", index=False)
    addresses = ev[S.ADDRESS].unique()
    pd.DataFrame({S.ADDRESS: addresses, S.CHANNEL: S.EMAIL, S.TIMEZONE: "UTC"}).to_csv(
        folder / "subscribers.csv", index=False
    )
    return end, daytime


def _best_window_start(daily: np.ndarray) -> np.ndarray:
    """Start hour of the heaviest 3 hours of the day (circular)."""
    return sum(np.roll(daily, -k, axis=-1) for k in range(3)).argmax(axis=-1)


def test_the_chosen_hour_converges_to_the_persons_own_window_as_their_events_grow(tmp_path, test_settings):
    """Priors break ties for sparse people; with many events the person's own pattern decides, however
    long their history: daytime people among evening people, their events spread over ten years.

    With absolute recency weights (a 90-day half life) this failed: 20 events over ten years counted
    as about one, and only one of the four 20-event people (three of the 50-event ones) got their own
    window."""
    from sendtime.features.identity import hash_values

    end, daytime = _convergence_world(tmp_path / "data")
    base = build_feature_base(load_folder(tmp_path / "data", test_settings.data), test_settings)
    profiles = build_profiles(base, end, test_settings.profiles)
    email = S.CHANNELS.index(S.EMAIL)
    addr = base.addresses[base.addresses[S.CHANNEL] == S.EMAIL]
    row_of_sub = pd.Series(np.arange(len(base.subscribers)), index=base.subscribers[S.SUBSCRIBER_ID])
    sub_of_hash = pd.Series(addr[S.SUBSCRIBER_ID].to_numpy(), index=addr["address_hash"])
    hashes = hash_values(pd.Series(list(daytime)), test_settings.salt())
    rows = row_of_sub.reindex(sub_of_hash.reindex(hashes.to_numpy()).to_numpy()).to_numpy().astype(np.int64)
    daily = profiles.shape[rows, email].reshape(len(rows), 7, 24).sum(axis=1)
    start = _best_window_start(daily)
    counts, peaks = np.array(list(daytime.values())).T
    own = (peaks - start) % 24 < 3  # the window holds the person's own peak hour
    source = profiles.table["email_pattern_source"].to_numpy()[rows]
    share = {n: float(own[counts == n].mean()) for n in CONVERGENCE_EVENTS}
    print(f"own window share by events: {share}; {profiles.shrinkage[S.EMAIL]}")
    # few events: the prior (the cohort, or the typical rhythm those events point to) weighs more
    assert (source[counts == 2] != "personal history").all()
    assert (source[counts == 100] == "personal history").all()
    assert all(share[n] == 1.0 for n in CONVERGENCE_EVENTS if n >= 20), share
    assert [share[n] for n in CONVERGENCE_EVENTS] == sorted(share.values()), share
