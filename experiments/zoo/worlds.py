"""The zoo's worlds: each a switch of structure (which tables exist, who the brand is, how habits couple),
not a nudge of one parameter. Written from what real exports look like, not from what the estimator
assumes; `generate` turns one of these into a data folder with its ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# (zone, share): the people's true zones; every zone has a phone plan in `people.PHONE_PLANS`
US_HEAVY = (("America/New_York", 0.34), ("America/Chicago", 0.2), ("America/Los_Angeles", 0.24),
            ("Europe/London", 0.1), ("Europe/Berlin", 0.06), ("Australia/Sydney", 0.06))  # fmt: skip
GLOBAL = (("Europe/London", 0.22), ("Europe/Berlin", 0.18), ("Australia/Sydney", 0.1),
          ("America/Sao_Paulo", 0.16), ("Asia/Kolkata", 0.16), ("America/New_York", 0.1),
          ("America/Los_Angeles", 0.08))  # fmt: skip


@dataclass(frozen=True)
class Slot:
    """A brand send: local wall time in the brand's zone, on these weekdays (Monday = 0)."""

    hour: float
    weekdays: tuple[int, ...]
    reach: float = 0.9  # share of the channel's subscribers the campaign targets


@dataclass(frozen=True)
class World:
    name: str
    about: str
    weeks: int = 8
    zones: tuple[tuple[str, float], ...] = US_HEAVY
    brand_zone: str = "America/New_York"
    slots: dict[str, tuple[Slot, ...]] = field(default_factory=dict)
    channel_mix: tuple[float, float, float] = (0.45, 0.15, 0.40)  # e-mail only, SMS only, both
    sms_habit_differs: float = 0.5  # share of two-channel people whose SMS habit is its own
    weekend_shift_share: float = 0.4  # share of people whose weekend runs later
    bumps_p: tuple[float, float, float] = (0.35, 0.45, 0.2)  # one, two or three bumps a day
    triggers_per_week: float = 0.6  # median triggered sends a person gets (browse, cart...)
    unengaged_share: float = 0.65
    tz_unknown: float = 0.4  # subscribers-table rows with an empty timezone
    subscribers_table: bool = True
    identity_links: bool = True
    machine_flag: bool = True  # the export carries `machine_open`; machine opens happen either way
    mpp_share: float = 0.4
    soft_bounce_flaky_share: float = 0.08  # addresses whose sends soft-bounce now and then
    hard_bounce_share: float = 0.02
    unsubscribe_when_seen: tuple[float, float] = (0.002, 0.006)  # e-mail, SMS
    file_format: str = "parquet"  # or "csv"
    people_of: str | None = None  # draw the same people as this world at the same seed (a paired export)


EMAIL_SLOTS = (Slot(10.0, (1, 3)), Slot(18.5, (5,), 0.8))
SMS_SLOTS = (Slot(12.0, (4,), 0.8), Slot(19.0, (2,), 0.6))

WORLDS: dict[str, World] = {
    w.name: w
    for w in (
        World(
            "inbox",
            "US brand; e-mail led; habits continuous; half the SMS habits differ; flagged machine opens",
            slots={"email": EMAIL_SLOTS, "sms": SMS_SLOTS},
        ),
        World(
            "events_only",
            "inbox's people and brand at the same seed, but the export is the events table alone (CSV): "
            "no subscribers table, no identity links, no machine-open flag",
            weeks=6,
            slots={"email": EMAIL_SLOTS, "sms": SMS_SLOTS},
            subscribers_table=False,
            identity_links=False,
            machine_flag=False,
            file_format="csv",
            people_of="inbox",
        ),
        World(
            "global",
            "London brand, people on five continents (UK, DE, AU, BR, IN, US numbers); a brand slot is a "
            "different local hour in every zone",
            weeks=10,
            zones=GLOBAL,
            brand_zone="Europe/London",
            slots={"email": (Slot(9.0, (0, 3)), Slot(16.0, (2,))), "sms": (Slot(11.0, (1,), 0.7),)},
            weekend_shift_share=0.6,
        ),
        World(
            "fixed_slots",
            "history almost all blasts at three fixed times per channel; few triggered sends; weekends "
            "later for 70%",
            weeks=12,
            slots={
                "email": (Slot(8.0, (0, 2, 4)), Slot(13.0, (1, 3)), Slot(20.0, (6,))),
                "sms": (Slot(10.0, (1,)), Slot(17.0, (3,)), Slot(12.0, (5,), 0.5)),
            },
            triggers_per_week=0.1,
            weekend_shift_share=0.7,
        ),
        World(
            "sms_first",
            "SMS-led brand: most people on both channels, SMS habit the same as e-mail's for 80%, "
            "more triggered sends",
            channel_mix=(0.2, 0.25, 0.55),
            sms_habit_differs=0.2,
            slots={"email": (Slot(11.0, (2,)),), "sms": (Slot(10.0, (1, 4)), Slot(18.0, (3, 6), 0.7))},
            triggers_per_week=1.2,
            unengaged_share=0.55,
        ),
        World(
            "messy",
            "a tired list: many soft bounces and unsubscribes, 60% machine opens without a flag, sparse "
            "three-bump habits",
            weeks=6,
            slots={"email": EMAIL_SLOTS, "sms": SMS_SLOTS},
            bumps_p=(0.2, 0.3, 0.5),
            machine_flag=False,
            mpp_share=0.6,
            soft_bounce_flaky_share=0.25,
            hard_bounce_share=0.05,
            unsubscribe_when_seen=(0.01, 0.02),
            unengaged_share=0.75,
        ),
    )
}


def world(name: str, **overrides) -> World:
    """A named world, optionally with fields replaced (tests use tiny variations)."""
    if name not in WORLDS:
        raise ValueError(f"unknown zoo world {name!r}; known: {', '.join(WORLDS)}")
    return replace(WORLDS[name], **overrides)
