"""On a simulated export with ordinary transient bounces, `schedule` leaves no reachable person unsent:
only addresses that are dead (a typed hard bounce) or unsubscribed are suppressed, and the plan's reason
names the rule. The champion is the session's real one; the profiles are built from this world's events,
as `sendtime refresh` would build them."""

from __future__ import annotations

import re

import pandas as pd
import phonenumbers
import pytest

from sendtime import schema as S
from sendtime.experiments.simulate import simulate
from sendtime.features.load import load_folder
from sendtime.features.prepare import build_feature_base
from sendtime.features.profiles import build_profiles
from sendtime.serving.campaign_options import parse_window
from sendtime.serving.planner import load_predictor, schedule_frame
from sendtime.serving.predictor import Predictor

pytestmark = pytest.mark.integration

WINDOW = ("2026-10-27T12:00:00Z", "2026-10-28T12:00:00Z")
RULE = re.compile(r"^(email|sms) suppressed: (hard bounce|unsubscribed) on \d{4}-\d\d-\d\d$")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """600 people, 8 weeks; 2% of e-mails bounce transiently and 30% of bounce rows carry no type."""
    out = tmp_path_factory.mktemp("transient-bounces")
    simulate(out, subscribers=600, days=56, seed=11, soft_bounce_rate=0.02, untyped_bounce_share=0.3)
    return out


@pytest.fixture(scope="module")
def plan(world, trained_champion, test_settings):
    champion = load_predictor(test_settings)
    base = build_feature_base(load_folder(world, test_settings.data), test_settings)
    profiles = build_profiles(
        base, base.span[1] + pd.Timedelta(seconds=1), test_settings.profiles, champion.profiles.shrinkage
    )
    predictor = Predictor(champion.booster, profiles, test_settings, champion.model_version)
    people = pd.read_parquet(world / S.GROUND_TRUTH_DIR / "people.parquet")
    audience = people[["email", "phone"]].astype(object).where(people[["email", "phone"]].notna(), "")
    table = schedule_frame(audience, predictor, parse_window(*WINDOW)).frame
    return people, table, _dead(world, people)


def _dead(world, people: pd.DataFrame) -> pd.DataFrame:
    """Per person and channel, what truly ends sending: the address is dead (ground truth) or the person
    unsubscribed (the export's own unsubscribe rows, matched to people by normalised address)."""
    events = pd.read_parquet(world / f"{S.EVENTS_TABLE}.parquet")
    unsub = events[events[S.EVENT_TYPE] == S.UNSUBSCRIBE]
    channel = unsub[S.CHANNEL].str.lower()
    email = unsub[S.ADDRESS].str.strip().str.lower()
    phone = [
        phonenumbers.format_number(phonenumbers.parse(a, "US"), phonenumbers.PhoneNumberFormat.E164)
        if c == S.SMS
        else None
        for a, c in zip(unsub[S.ADDRESS], channel, strict=True)
    ]
    gone_email = set(email[channel == S.EMAIL])
    gone_phone = {p for p, c in zip(phone, channel, strict=True) if c == S.SMS}
    hard = events[(events[S.EVENT_TYPE] == S.BOUNCE) & (events[S.BOUNCE_TYPE] == S.HARD)]
    return pd.DataFrame(
        {
            S.EMAIL: people["email_bounces"].to_numpy() | people["email"].isin(gone_email).to_numpy(),
            S.SMS: people["phone"].isin(gone_phone).to_numpy(),
            # what the export says: a typed hard bounce, or an unsubscribe (untyped dead ones look soft)
            "email_ended": people["email"].isin(gone_email | set(hard[S.ADDRESS].str.strip().str.lower())),
        }
    )


def test_no_reachable_person_is_left_unsent(plan):
    people, table, dead = plan
    reachable = (people["email"].notna() & ~dead[S.EMAIL]) | (people["phone"].notna() & ~dead[S.SMS])
    unsent = table[S.PLAN_CHANNEL].isna()
    assert reachable.sum() > 500
    left = table[reachable.to_numpy() & unsent.to_numpy()]
    assert left.empty, left[[S.REASON]].value_counts().head()
    # and nobody is sent on a channel the export says has ended (a typed hard bounce or an unsubscribe)
    assert dead["email_ended"].sum() > 5
    assert not ((table[S.PLAN_CHANNEL] == S.EMAIL).to_numpy() & dead["email_ended"].to_numpy()).any()
    assert not ((table[S.PLAN_CHANNEL] == S.SMS).to_numpy() & dead[S.SMS].to_numpy()).any()


def test_the_unsent_say_which_rule_applied(plan):
    people, table, dead = plan
    unsent = table[table[S.PLAN_CHANNEL].isna()]
    assert len(unsent) > 0  # the world has hard bounces and unsubscribes
    for reason in unsent[S.REASON]:
        parts = reason.split(", ")
        assert all(RULE.match(p) for p in parts), reason
    assert unsent[S.REASON].str.contains("hard bounce on").any()
    assert unsent[S.REASON].str.contains("unsubscribed on").any()


def test_transient_bounces_were_there_and_suppress_nobody(world, plan):
    people, table, _ = plan
    events = pd.read_parquet(world / f"{S.EVENTS_TABLE}.parquet")
    bounces = events[events[S.EVENT_TYPE] == S.BOUNCE]
    soft_people = bounces[bounces[S.BOUNCE_TYPE] != S.HARD][S.ADDRESS].str.strip().str.lower().nunique()
    assert soft_people > 0.1 * people["email"].notna().sum()  # many addresses bounced at least once
    assert not table[S.REASON].str.contains("bounces in a row").any()
    # the people one bounce used to suppress for good: e-mail-only, live, bounced at least once
    bounced = set(bounces[S.ADDRESS].str.strip().str.lower())
    victims = people["email"].isin(bounced) & people["phone"].isna() & ~people["email_bounces"]
    assert victims.sum() > 0.08 * len(people)
    assert table.loc[victims.to_numpy(), S.PLAN_CHANNEL].eq(S.EMAIL).mean() > 0.9  # the rest unsubscribed
