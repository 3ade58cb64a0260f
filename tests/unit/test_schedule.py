"""`sendtime schedule`: the planning core on hand-made score grids, the batch job with a stand-in
predictor (fast), and a few checks with the real trained champion (marked integration)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import PolicySettings, load_settings
from sendtime.serving.campaign import plan_campaign
from sendtime.serving.campaign_options import parse_window
from sendtime.serving.capacity import greedy_first_come
from sendtime.serving.contacts import Audience
from sendtime.serving.plan_io import PLAN_COLUMNS, read_audience, write_plan
from sendtime.serving.planner import schedule_frame
from sendtime.serving.policy import decide
from sendtime.serving.quiet_hours import load_rules, sms_allowed
from sendtime.serving.reasons import REASON_BUDGET, REASON_DUPLICATE, REASON_HOLDOUT
from sendtime.serving.schedule import run_schedule
from sendtime.serving.spark_schedule import EngineNotAvailable

EMAIL, SMS, NONE_ = 0, 1, -1
NO = -np.inf
START, END = "2026-11-03T12:00:00Z", "2026-11-04T12:00:00Z"


def _grid(email: list[list[float]], sms: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """scores and feasible from per-row lists; -inf (NO) marks an infeasible cell (score 0)."""
    grid = np.stack([np.array(email, dtype=float), np.array(sms, dtype=float)], axis=1)
    feasible = np.isfinite(grid)
    return np.where(feasible, grid, 0.0), feasible


def _value(scores, plan) -> float:
    sent = plan.channel >= 0
    return float(scores[np.flatnonzero(sent), plan.channel[sent], plan.hour[sent]].sum())


# --- the planning core -------------------------------------------------------------------------


def _random_case(n=300, hours=12, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.gamma(2.0, 0.01, size=(n, 2, hours))
    feasible = np.ones(scores.shape, dtype=bool)
    feasible[rng.random(n) < 0.2, EMAIL] = False  # SMS-only rows
    feasible[rng.random(n) < 0.3, SMS] = False  # e-mail-only rows
    feasible[:, SMS, : hours // 3] = False  # quiet hours
    feasible[rng.random(n) < 0.03] = False  # no contact
    return np.where(feasible, scores, 0.0), feasible


@pytest.mark.parametrize("caps", [{}, {"max_sms": 10**9, "max_per_hour": {"email": 10**9, "sms": 10**9}}])
def test_without_binding_limits_the_plan_is_decides_argmax(caps):
    scores, feasible = _random_case()
    policy = PolicySettings()
    d = decide(scores, feasible, policy, np.random.default_rng(0), eligible=feasible.any(axis=2))
    plan = plan_campaign(scores, feasible, policy, eligible=feasible.any(axis=2), **caps)
    assert np.array_equal(plan.channel, d.channel) and np.array_equal(plan.hour, d.hour)
    np.testing.assert_allclose(plan.expected, d.expected, equal_nan=True)
    assert not plan.explored.any() and not plan.holdout.any()
    assert np.all(plan.propensity[plan.channel >= 0] == 1.0)
    sent = plan.channel >= 0
    assert np.array_equal(plan.reason[sent], d.reason[sent])


def test_sms_budget_goes_to_the_largest_gains_and_sms_only_rows_need_sms_or_nothing():
    policy = PolicySettings(sms_cost=0.01)
    scores, feasible = _grid(
        email=[[0.02, 0.03], [0.02, 0.02], [0.05, 0.01], [NO, NO], [NO, NO], [0.04, 0.04]],
        sms=[[0.09, 0.06], [0.05, 0.05], [0.07, 0.02], [0.08, 0.03], [0.005, 0.004], [0.03, 0.03]],
    )
    # gains (click_value * (sms - e-mail) - cost): 0.05, 0.02, 0.01, SMS-only 0.07, SMS-only -0.005;
    # row 5 never wants SMS (0.03 - 0.01 < 0.04). Uncapped, rows 0-4 all get SMS.
    free = plan_campaign(scores, feasible, policy)
    assert free.channel.tolist() == [SMS, SMS, SMS, SMS, SMS, EMAIL]

    plan = plan_campaign(scores, feasible, policy, max_sms=2)
    assert plan.channel.tolist() == [SMS, EMAIL, EMAIL, SMS, NONE_, EMAIL]
    assert plan.sms_used == 2
    assert (plan.hour[1], plan.hour[2]) == (0, 0)  # demoted rows at their best e-mail hour
    assert plan.reason[1] == "email: sms budget went to larger gains"
    assert plan.reason[4] == REASON_BUDGET
    # the cost of the budget: what the per-row plan had minus what is left
    lost = (0.05 - 0.02) + (0.07 - 0.05) + 0.005
    assert plan.cost["sms budget"] == pytest.approx(lost)

    # with a budget of 4, every positive gain is funded first; the SMS-only row with a negative gain
    # gets what is left (as the per-row policy would send it): nothing left here
    four = plan_campaign(scores, feasible, policy, max_sms=4)
    assert four.channel.tolist() == [SMS, SMS, SMS, SMS, NONE_, EMAIL]
    five = plan_campaign(scores, feasible, policy, max_sms=5)
    assert five.channel.tolist() == free.channel.tolist()
    assert plan_campaign(scores, feasible, policy, max_sms=0).sms_used == 0


@pytest.mark.parametrize("budget", [0, 1, 17, 60])
def test_budget_is_never_exceeded(budget):
    scores, feasible = _random_case(seed=budget)
    plan = plan_campaign(
        scores, feasible, PolicySettings(sms_cost=0.0), max_sms=budget, max_per_hour={"sms": 9}
    )
    assert plan.sms_used <= budget
    assert np.all(
        feasible[
            np.flatnonzero(plan.channel >= 0), plan.channel[plan.channel >= 0], plan.hour[plan.channel >= 0]
        ]
    )


def test_capacity_beats_first_come_and_is_never_exceeded():
    # row 0 is as happy at 13h as at 12h; row 1 only responds at 12h. One send per hour.
    scores, feasible = _grid(
        email=[[0.050, 0.049, 0.001], [0.050, 0.002, 0.001], [0.010, 0.010, 0.009]],
        sms=[[NO] * 3] * 3,
    )
    plan = plan_campaign(scores, feasible, PolicySettings(), max_per_hour={"email": 1})
    assert plan.hour.tolist() == [1, 0, 2]
    assert plan.sends_per_hour(3).max() <= 1
    greedy = greedy_first_come(np.where(feasible[:, EMAIL], scores[:, EMAIL], -np.inf), np.full(3, 1))
    greedy_value = sum(scores[i, EMAIL, h] for i, h in enumerate(greedy) if h >= 0)
    assert _value(scores, plan) > greedy_value + 0.04
    assert plan.reason[0] == "email: hour moved by the send-rate cap"
    assert plan.cost["email cap"] == pytest.approx(0.050 - 0.049 + 0.010 - 0.009)


def test_caps_hold_on_a_larger_case_and_rows_left_out_say_why():
    scores, feasible = _random_case(n=400, hours=6, seed=3)
    plan = plan_campaign(
        scores, feasible, PolicySettings(), max_sms=50, max_per_hour={"email": 40, "sms": 10}
    )
    per_hour = plan.sends_per_hour(6)
    assert per_hour[EMAIL].max() <= 40 and per_hour[SMS].max() <= 10 and plan.sms_used <= 50
    sent = np.flatnonzero(plan.channel >= 0)
    assert feasible[sent, plan.channel[sent], plan.hour[sent]].all()
    left_out = (plan.channel < 0) & feasible.any(axis=(1, 2))
    assert left_out.any()
    assert set(pd.Series(plan.reason[left_out]).str.rsplit("; ", n=1).str[-1]) <= {
        "send-rate cap full",
        REASON_BUDGET,
    }


def test_holdout_at_campaign_time_and_counting_against_the_caps():
    scores, feasible = _grid(
        email=[[0.01, 0.02, 0.09], [0.01, 0.09, 0.02], [NO, NO, NO], [0.01, 0.03, 0.09]],
        sms=[[NO] * 3, [NO] * 3, [NO, 0.0, 0.05], [NO] * 3],
    )
    hold = np.array([True, True, True, False])
    plan = plan_campaign(scores, feasible, PolicySettings(), holdout=hold, campaign_hour=0)
    assert plan.channel.tolist() == [EMAIL, EMAIL, SMS, EMAIL]
    assert plan.hour.tolist() == [0, 0, 1, 2]  # SMS-only holdout: first quiet-hours-feasible hour
    assert plan.holdout.tolist() == [True, True, True, False]
    assert all(r == REASON_HOLDOUT for r in plan.reason[:3])
    assert np.all(plan.propensity[:3] == 1.0)
    # a cap of one e-mail per hour: the second holdout row spills to the next hour, the free row adapts
    capped = plan_campaign(
        scores,
        feasible,
        PolicySettings(),
        holdout=hold,
        campaign_hour=0,
        max_per_hour={"email": 1},
        max_sms=0,
    )
    assert capped.hour[:2].tolist() == [0, 1]
    assert capped.channel[2] == NONE_ and capped.reason[2] == f"{REASON_HOLDOUT}; {REASON_BUDGET}"
    assert capped.hour[3] == 2 and capped.sends_per_hour(3).max() <= 1


def test_exploration_flags_and_propensities():
    scores, feasible = _random_case(n=4000, hours=6, seed=5)
    share = 0.3
    plan = plan_campaign(scores, feasible, PolicySettings(), explore=share, seed=11)
    decided = plan.channel >= 0
    assert plan.explored[decided].mean() == pytest.approx(share, abs=0.03)
    assert not plan.explored[~decided].any()
    k = feasible.reshape(len(scores), -1).sum(axis=1)
    d = decide(scores, feasible, PolicySettings(), np.random.default_rng(0))
    at_best = (plan.channel == d.channel) & (plan.hour == d.hour)
    expect = share / k[decided] + (1 - share) * at_best[decided]
    np.testing.assert_allclose(plan.propensity[decided], expect)
    assert np.all(plan.propensity[decided] > 0) and np.isnan(plan.propensity[~decided]).all()
    again = plan_campaign(scores, feasible, PolicySettings(), explore=share, seed=11)
    assert np.array_equal(again.explored, plan.explored) and np.array_equal(again.hour, plan.hour)
    other = plan_campaign(scores, feasible, PolicySettings(), explore=share, seed=12)
    assert not np.array_equal(other.explored, plan.explored)
    # exploration under caps: explored rows keep random cells only where there is room
    capped = plan_campaign(
        scores, feasible, PolicySettings(), explore=share, seed=11, max_per_hour={"email": 300}
    )
    assert capped.sends_per_hour(6)[EMAIL].max() <= 300
    assert capped.explored.sum() <= plan.explored.sum()


# --- the batch job with a stand-in predictor ---------------------------------------------------


class StandInPredictor:
    """Resolves contacts by their text and scores from a hash of the subscriber id: no model needed."""

    model_version = "stand-in"

    def __init__(self) -> None:
        self.settings = load_settings()

    def resolve(self, emails, phones) -> Audience:
        emails = [e.strip().lower() if isinstance(e, str) and e.strip() else None for e in emails]
        phones = [p.strip() if isinstance(p, str) and p.strip() else None for p in phones]
        ok_e = np.array([e is not None and "@" in e for e in emails])
        ok_p = np.array(
            [p is not None and p.startswith("+1") and p[1:].isdigit() and len(p) == 12 for p in phones]
        )
        given = np.stack([[e is not None for e in emails], [p is not None for p in phones]], axis=1)
        valid = np.stack([ok_e, ok_p], axis=1)
        n = len(emails)
        ids = np.array(
            [
                f"e:{e}" if a else (f"p:{p}" if b else None)
                for e, p, a, b in zip(emails, phones, ok_e, ok_p, strict=True)
            ],
            dtype=object,
        )
        west = np.array([b and p.startswith("+1415") for p, b in zip(phones, ok_p, strict=True)])
        tz = np.where(west, "America/Los_Angeles", "America/New_York").astype(object)
        return Audience(
            subscriber_id=ids,
            rows=np.full((n, 2), -1),
            has=valid,
            invalid=given & ~valid,
            opted_out=np.zeros((n, 2), dtype=bool),
            timezone=tz,
            tz_source=np.full(n, "phone", dtype=object),
            state=np.full(n, None, dtype=object),
            cohort=np.full(n, -1),
            pattern=np.full((n, 2), "personal history", dtype=object),
        )

    def score(self, audience, hour_starts, channels=None, progress=False):
        n, h = len(audience), len(hour_starts)
        out = np.zeros((n, 2, h), dtype=np.float32)
        for i, sid in enumerate(audience.subscriber_id):
            if sid is None:
                continue
            rng = np.random.default_rng(zlib.crc32(str(sid).encode()))
            out[i] = rng.gamma(2.0, 0.01, size=(2, h))
        return out * audience.has[:, :, None]


def _audience() -> pd.DataFrame:
    rows = [
        ("ana@example.com", "+12125550101", "vip"),
        ("", "+14155550102", "regular"),  # SMS only, west coast
        ("ben@example.com", "", "regular"),
        ("not an email", "12", "lapsed"),  # both invalid
        ("", "", "regular"),  # empty
        ("ANA@example.com ", "+12125550101", "vip"),  # the same person again
        ("new.person@example.com", "+13125550199", "new"),  # unknown: cold start
        ("cara@example.com", "bad phone", "regular"),  # valid e-mail, invalid phone
    ]
    frame = pd.DataFrame(rows, columns=["email", "phone", "segment"])
    frame.insert(0, "customer_ref", [f"C{i:03d}" for i in range(len(frame))])
    frame["note"] = ["007", "+44", "", "x", "NA", "a,b", "0", " spaced "]
    return frame


def _plan(frame, **kw):
    return schedule_frame(frame, StandInPredictor(), parse_window(START, END), progress=False, **kw)


def test_every_row_kept_in_order_with_its_columns_unchanged():
    frame = _audience()
    result = _plan(frame)
    out = result.frame
    assert len(out) == len(frame)
    assert list(out.columns) == [*frame.columns, *PLAN_COLUMNS]
    pd.testing.assert_frame_equal(out[frame.columns], frame)
    reasons = out["reason"].tolist()
    assert reasons[3] == "invalid email, invalid phone" and out["channel"][3] is None
    assert reasons[4] == "no contact" and out["channel"][4] is None
    assert reasons[5] == REASON_DUPLICATE and out["channel"][5] is None  # one send per person
    assert out["subscriber_id"][5] == out["subscriber_id"][0]
    assert reasons[7].endswith("; invalid phone") and out["channel"][7] == "email"
    assert out["channel"][6] in ("email", "sms") and out["channel"][1] == "sms"
    assert result.duplicates == 1
    every = _plan(frame, duplicates="all")
    assert every.frame["channel"][5] == every.frame["channel"][0]


def test_send_times_inside_the_window_and_sms_inside_local_quiet_hours():
    frame = pd.concat([_audience()] * 30, ignore_index=True)
    frame["email"] = [e if i % 3 else "" for i, e in enumerate(frame["email"])]  # many SMS-only rows
    frame["phone"] = [f"+1{('212', '415', '312')[i % 3]}555{i:04d}" for i in range(len(frame))]
    out = _plan(frame, max_per_hour={"sms": 15}).frame
    sent = out[out["channel"].notna()]
    at = pd.to_datetime(sent["send_at"], format="%Y-%m-%dT%H:%M:%SZ", utc=True)
    assert (at >= pd.Timestamp(START)).all() and (at < pd.Timestamp(END)).all()
    assert sent["send_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00Z").all()
    sms = sent[sent["channel"] == "sms"]
    assert len(sms) > 20
    zones = np.where(sms["phone"].str.startswith("+1415"), "America/Los_Angeles", "America/New_York")
    local = [
        t.tz_convert(z).hour for t, z in zip(pd.to_datetime(sms["send_at"], utc=True), zones, strict=True)
    ]
    assert all(8 <= h < 21 for h in local)
    assert (pd.to_datetime(sent["window_start"], utc=True) <= at).all()
    assert (pd.to_datetime(sent["window_end"], utc=True) > at).all()


def test_holdout_share_reproducible_and_independent_of_row_order():
    frame = pd.DataFrame({"email": [f"p{i}@example.com" for i in range(3000)], "phone": ""})
    first = _plan(frame, holdout=0.2, seed=4).frame
    second = _plan(frame, holdout=0.2, seed=4).frame
    assert first["holdout"].mean() == pytest.approx(0.2, abs=0.025)
    assert first["holdout"].equals(second["holdout"])
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    again = _plan(shuffled, holdout=0.2, seed=4).frame
    held = set(first.loc[first["holdout"], "subscriber_id"])
    assert set(again.loc[again["holdout"], "subscriber_id"]) == held
    other_seed = _plan(frame, holdout=0.2, seed=5).frame
    assert set(other_seed.loc[other_seed["holdout"], "subscriber_id"]) != held
    assert (first.loc[first["holdout"], "send_at"] == "2026-11-03T12:00:00Z").all()
    assert (first.loc[first["holdout"], "reason"] == REASON_HOLDOUT).all()


def test_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    table = _plan(_audience()).frame
    for name in ("plan.csv", "plan.parquet"):
        write_plan(table, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.csv", "plan.parquet"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "plan.csv").stat().st_mode & 0o777 == 0o666 & ~umask  # not a private temp file's 0600
    back = pd.read_csv(tmp_path / "plan.csv", dtype=str, keep_default_na=False)
    assert back["note"].tolist() == table["note"].tolist()
    assert (
        pd.read_parquet(tmp_path / "plan.parquet")["customer_ref"].tolist() == table["customer_ref"].tolist()
    )

    before = (tmp_path / "plan.csv").read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        write_plan(table, tmp_path / "plan.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.csv", "plan.parquet"]
    assert (tmp_path / "plan.csv").read_bytes() == before


def test_run_schedule_writes_plan_png_and_summary(tmp_path):
    audience = tmp_path / "audience.csv"
    _audience().to_csv(audience, index=False)
    lines: list[str] = []
    code = run_schedule(
        audience, START, END, tmp_path / "plan.csv", load_settings(), max_sms=1, max_per_hour={"email": 2},
        holdout=0.0, echo=lines.append, predictor=StandInPredictor(),
    )  # fmt: skip
    assert code == 0
    assert (tmp_path / "plan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "\n".join(lines)
    assert "sms: 1 used (budget 1)" in text and "email cap 2/h" in text and "lift x" in text
    plan = pd.read_csv(tmp_path / "plan.csv", dtype=str, keep_default_na=False)
    assert plan["phone"].tolist() == _audience()["phone"].tolist()  # '+' and leading zeros kept


# --- option and input errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "campaign", "message"),
    [
        ("2026-11-03T12:00:00", END, None, "needs a UTC offset or Z"),
        ("tomorrow-ish", END, None, "not an ISO-8601 time"),
        (END, START, None, "must be after --start"),
        (START, "2026-11-20T12:00:00Z", None, "at most 14 days"),
        (START, END, "2026-11-05T00:00:00Z", "--campaign-time"),
        ("2026-11-03T12:10:00Z", "2026-11-03T12:50:00Z", None, "no clock-hour start"),
    ],
)
def test_bad_windows(start, end, campaign, message):
    with pytest.raises(ValueError, match=message):
        parse_window(start, end, campaign)


def test_window_with_offsets_and_campaign_time():
    w = parse_window("2026-11-03T07:30:00-05:00", "2026-11-04T07:30:00-05:00", "2026-11-03T15:00:00+01:00")
    assert w.hours[0] == pd.Timestamp("2026-11-03T13:00:00Z") and len(w.hours) == 24
    assert w.hours[w.campaign_hour] == pd.Timestamp("2026-11-03T14:00:00Z")


def test_audience_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_audience(tmp_path / "missing.csv")
    (tmp_path / "a.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unknown extension '.xlsx'"):
        read_audience(tmp_path / "a.xlsx")
    (tmp_path / "cols.csv").write_text("name,mail\nana,ana@example.com\n")
    with pytest.raises(ValueError, match=r"cols.csv: needs a column 'email' or 'phone'"):
        read_audience(tmp_path / "cols.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="broken.parquet: cannot read it as parquet"):
        read_audience(tmp_path / "broken.parquet")
    (tmp_path / "clash.csv").write_text("email,channel\nana@example.com,web\n")
    with pytest.raises(ValueError, match="would be overwritten"):
        read_audience(tmp_path / "clash.csv")
    (tmp_path / "phones.csv").write_text("phone,id\n+12125550101,007\n")
    frame = read_audience(tmp_path / "phones.csv")
    assert frame["phone"][0] == "+12125550101" and frame["id"][0] == "007"


def test_csv_empty_lines_are_rows_and_a_bom_is_ignored(tmp_path):
    (tmp_path / "one.csv").write_bytes("\ufeffphone\n+12125550101\n\n02125550102\n".encode())
    frame = read_audience(tmp_path / "one.csv")
    assert frame["phone"].tolist() == ["+12125550101", "", "02125550102"]
    out = _plan(frame).frame
    assert len(out) == 3 and out["reason"][1] == "no contact"


def test_an_engine_this_build_cannot_run_is_a_clear_not_implemented_error(tmp_path):
    with pytest.raises(EngineNotAvailable, match="--engine dask") as info:
        run_schedule(tmp_path / "a.csv", START, END, tmp_path / "p.csv", load_settings(), engine="dask")
    assert isinstance(info.value, NotImplementedError) and isinstance(info.value, ValueError)


# --- with the real champion --------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_predictor(trained_champion, test_settings):
    from sendtime.serving.planner import load_predictor

    return load_predictor(test_settings)


@pytest.fixture(scope="module")
def world_audience(small_world) -> pd.DataFrame:
    people = pd.read_parquet(small_world / "ground_truth" / "people.parquet")
    rng = np.random.default_rng(0)
    known = people.sample(300, random_state=0)[["email", "phone"]].reset_index(drop=True)
    odd = pd.DataFrame(
        {
            "email": [None, "", "broken@", known["email"].dropna().iloc[0], "brand.new@example.com", None],
            "phone": [None, " ", "123", None, "+13125550142", "+14155550142"],
        }
    )
    frame = pd.concat([known, odd, known.head(5)], ignore_index=True)  # the last 5 repeat people
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    frame.insert(0, "ref", [f"R{i}" for i in range(len(frame))])
    return frame.astype(object).where(frame.notna(), None)


@pytest.mark.integration
def test_real_plan_keeps_rows_and_respects_limits(real_predictor, world_audience):
    window = parse_window("2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z")
    result = schedule_frame(
        world_audience,
        real_predictor,
        window,
        max_sms=20,
        max_per_hour={"email": 25},
        holdout=0.1,
        explore=0.05,
    )
    out, plan = result.frame, result.plan
    assert len(out) == len(world_audience) and out["ref"].tolist() == world_audience["ref"].tolist()
    pd.testing.assert_frame_equal(out[world_audience.columns], world_audience)
    assert plan.sms_used <= 20 and plan.sends_per_hour(24)[EMAIL].max() <= 25
    no_send = out["channel"].isna()
    assert out.loc[no_send, "reason"].str.len().gt(0).all()
    assert (out["email"].isna() & out["phone"].isna()).sum() <= (out["reason"] == "no contact").sum()
    assert out["expected_engagement"][~no_send].between(0, 1).all()
    assert result.duplicates >= 5

    # SMS only inside quiet hours in the recipient's local time: in every zone they may be in (the
    # number's, the profile's; the configured default only when nothing else is known) and their state's
    aud = real_predictor.resolve(list(world_audience["email"]), list(world_audience["phone"]))
    allowed = sms_allowed(window.hours, aud.sms_zones, aud.state, load_rules(real_predictor.settings.policy))
    sms = np.flatnonzero(plan.channel == SMS)
    assert len(sms) and allowed[sms, plan.hour[sms]].all()
    local = [
        pd.Timestamp(t).tz_convert(z).hour
        for t, zones in zip(out["send_at"][sms], aud.sms_zones[sms], strict=True)
        for z in zones.split("|")
    ]
    assert len(local) >= len(sms) and all(8 <= h < 21 for h in local)


@pytest.mark.integration
def test_scoring_each_distinct_input_once_gives_the_same_scores(real_predictor, world_audience):
    from sendtime.serving.plan_io import contacts
    from sendtime.serving.planner import resolve_audience, score_audience

    window = parse_window("2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z")
    emails, phones = contacts(world_audience, "email"), contacts(world_audience, "phone")
    aud = resolve_audience(real_predictor, emails, phones)
    direct = real_predictor.resolve(list(emails), list(phones))
    for name in type(aud).__dataclass_fields__:
        mine, theirs = (np.asarray(getattr(a, name), dtype=object).astype(str) for a in (aud, direct))
        np.testing.assert_array_equal(mine, theirs, err_msg=name)  # as text: <NA> never equals itself
    once, distinct = score_audience(real_predictor, aud, window.hours)
    assert distinct < len(aud)
    np.testing.assert_array_equal(once, real_predictor.score(direct, window.hours))


@pytest.mark.integration
def test_real_plan_holdout_reproducible_across_shuffles(real_predictor, world_audience):
    window = parse_window("2026-11-10T12:00:00Z", "2026-11-11T12:00:00Z")
    a = schedule_frame(world_audience, real_predictor, window, holdout=0.3, seed=2).frame
    shuffled = world_audience.sample(frac=1.0, random_state=3).reset_index(drop=True)
    b = schedule_frame(shuffled, real_predictor, window, holdout=0.3, seed=2).frame
    held_a = set(a.loc[a["holdout"], "subscriber_id"])
    assert held_a == set(b.loc[b["holdout"], "subscriber_id"])
    assert len(held_a) / a["subscriber_id"].nunique() == pytest.approx(0.3, abs=0.1)
    merged = a.merge(b, on="ref", suffixes=("_a", "_b"))
    planned = (
        ~merged["holdout_a"] & merged["channel_a"].notna() & ~merged["reason_a"].str.startswith("duplicate")
    )
    both = planned & ~merged["reason_b"].str.startswith("duplicate")
    assert (merged.loc[both, "send_at_a"] == merged.loc[both, "send_at_b"]).all()
