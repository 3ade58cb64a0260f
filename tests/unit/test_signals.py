"""Engagement signals on hand-checkable event frames: machine opens, de-duplication, attribution, opt-outs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.configs.settings import SignalSettings
from sendtime.features.signals import CLICK_KIND, OPEN_KIND, extract_signals

EMAIL, SMS = 0, 1
DAY = pd.Timestamp("2026-03-02T00:00:00Z")  # a Monday


def at(hours: float, day: int = 0) -> pd.Timestamp:
    return DAY + pd.Timedelta(days=day) + pd.Timedelta(hours=hours)


def ev(
    sub: int, channel: int, event_type: str, when: pd.Timestamp, message_id=None, machine_open=None
) -> dict:
    return {
        "sub": sub,
        "channel": channel,
        "event_type": event_type,
        "at": when,
        "message_id": message_id,
        "machine_open": machine_open,
    }


def frame(*rows: dict) -> pd.DataFrame:
    """The frame prepare.build_feature_base hands to extract_signals."""
    df = pd.DataFrame(
        list(rows), columns=["sub", "channel", "event_type", "at", "message_id", "machine_open"]
    )
    return pd.DataFrame(
        {
            "sub": df["sub"].astype(np.int32),
            "channel": df["channel"].astype(np.int8),
            "event_type": df["event_type"].astype(object),
            "at": pd.to_datetime(df["at"], utc=True),
            "message_id": df["message_id"].astype("string").to_numpy(),
            "machine_open": df["machine_open"].astype("boolean").to_numpy(),
        }
    )


def opens(sig) -> pd.DataFrame:
    return sig.engagements[sig.engagements["kind"] == OPEN_KIND].reset_index(drop=True)


def clicks(sig) -> pd.DataFrame:
    return sig.engagements[sig.engagements["kind"] == CLICK_KIND].reset_index(drop=True)


def mailings(sub: int, n: int, open_after_s: float | None, fast_n: int | None = None) -> list[dict]:
    """`n` daily e-mails sent at 09:00, delivered 1 s later; the first `fast_n` (default all) opened
    `open_after_s` seconds after delivery, the rest opened 5 hours later."""
    rows = []
    fast_n = n if fast_n is None else fast_n
    for d in range(n):
        mid = f"s{sub}-m{d}"
        sent = at(9, day=d)
        delivered = sent + pd.Timedelta(seconds=1)
        rows += [ev(sub, EMAIL, "send", sent, mid), ev(sub, EMAIL, "delivered", delivered, mid)]
        if open_after_s is not None:
            after = pd.Timedelta(seconds=open_after_s) if d < fast_n else pd.Timedelta(hours=5)
            rows.append(ev(sub, EMAIL, "open", delivered + after, mid))
    return rows


# --- machine opens ----------------------------------------------------------------------------------


def test_flagged_machine_open_is_dropped_and_the_click_kept():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "send", at(9), "m1"),
            ev(0, EMAIL, "open", at(9.001), "m1", machine_open=True),
            ev(0, EMAIL, "open", at(11), "m1", machine_open=False),
            ev(0, EMAIL, "click", at(11.5), "m1"),
        ),
        SignalSettings(),
    )
    assert sig.stats["machine_opens_flagged"] == 1
    assert opens(sig)["at"].tolist() == [at(11)]  # the unflagged, human open
    assert clicks(sig)["at"].tolist() == [at(11.5)]


def test_unflagged_automated_reader_loses_fast_opens_and_keeps_clicks():
    rows = mailings(sub=0, n=5, open_after_s=10)  # every mail opened 10 s after delivery: a proxy
    rows.append(ev(0, EMAIL, "click", at(13, day=1), "s0-m1"))
    sig = extract_signals(frame(*rows), SignalSettings())
    assert sig.stats["automated_readers"] == 1
    assert sig.stats["machine_opens_detected"] == 5
    assert opens(sig).empty
    assert clicks(sig)["at"].tolist() == [at(13, day=1)]
    assert clicks(sig)["delay_h"].tolist() == pytest.approx([4.0])


def test_automated_reader_keeps_a_later_open_only_when_configured():
    rows = mailings(sub=0, n=5, open_after_s=10)
    rows.append(ev(0, EMAIL, "open", at(20, day=2), "s0-m2"))  # a person coming back to the mail
    data = frame(*rows)

    kept = extract_signals(data, SignalSettings())  # keep_late_opens_of_automated_readers defaults to True
    assert opens(kept)["at"].tolist() == [at(20, day=2)]
    assert opens(kept)["delay_h"].tolist() == pytest.approx([11.0])

    strict = extract_signals(data, SignalSettings(keep_late_opens_of_automated_readers=False))
    assert strict.stats["automated_readers"] == 1
    assert opens(strict).empty  # every open of the automated reader dropped


def test_normal_reader_keeps_opens():
    sig = extract_signals(frame(*mailings(sub=0, n=5, open_after_s=3 * 3600)), SignalSettings())
    assert sig.stats["automated_readers"] == 0
    assert len(opens(sig)) == 5
    assert opens(sig)["delay_h"].tolist() == pytest.approx([3 + 1 / 3600] * 5)


def test_automated_reader_needs_the_share_and_the_message_count():
    # 3 of 5 fast (60% < 70%): not automated; all 5 opens kept
    below_share = extract_signals(frame(*mailings(sub=0, n=5, open_after_s=10, fast_n=3)), SignalSettings())
    assert below_share.stats["automated_readers"] == 0
    assert len(opens(below_share)) == 5
    # 4 of 5 fast (80%): automated; the fast 4 dropped, the late one kept
    above_share = extract_signals(frame(*mailings(sub=0, n=5, open_after_s=10, fast_n=4)), SignalSettings())
    assert above_share.stats["automated_readers"] == 1
    assert opens(above_share)["at"].tolist() == [at(9, day=4) + pd.Timedelta(seconds=1, hours=5)]
    # all fast but only 4 delivered (< machine_open_min_messages = 5): too little to judge
    too_few = extract_signals(frame(*mailings(sub=0, n=4, open_after_s=10)), SignalSettings())
    assert too_few.stats["automated_readers"] == 0
    assert len(opens(too_few)) == 4


def test_automated_reader_detection_is_per_subscriber():
    rows = mailings(sub=0, n=5, open_after_s=10) + mailings(sub=1, n=5, open_after_s=2 * 3600)
    sig = extract_signals(frame(*rows), SignalSettings())
    assert sig.stats["automated_readers"] == 1
    assert opens(sig)["sub"].tolist() == [1] * 5


# --- de-duplication ---------------------------------------------------------------------------------


def test_repeated_opens_of_one_message_count_once_at_the_first():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "send", at(9), "m1"),
            ev(0, EMAIL, "open", at(14), "m1"),
            ev(0, EMAIL, "open", at(10), "m1"),
            ev(0, EMAIL, "open", at(20, day=1), "m1"),  # a day later, still the same message
            ev(0, EMAIL, "click", at(10.1), "m1"),
            ev(0, EMAIL, "click", at(10.2), "m1"),
        ),
        SignalSettings(),
    )
    assert opens(sig)["at"].tolist() == [at(10)]
    assert clicks(sig)["at"].tolist() == [at(10.1)]
    assert sig.stats["duplicate_opens"] == 2
    assert sig.stats["duplicate_clicks"] == 1


def test_without_message_ids_opens_within_30_minutes_count_once():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "open", at(10)),
            ev(0, EMAIL, "open", at(10.25)),  # 15 minutes later: the same reading
            ev(0, EMAIL, "open", at(12.25)),  # 2 hours later: a new one
            ev(1, EMAIL, "open", at(10.1)),  # another person: counted on its own
            ev(0, EMAIL, "click", at(10.2)),  # another kind: counted on its own
        ),
        SignalSettings(),
    )
    assert opens(sig)[["sub", "at"]].values.tolist() == [[0, at(10)], [1, at(10.1)], [0, at(12.25)]]
    assert clicks(sig)["at"].tolist() == [at(10.2)]


# --- attribution ------------------------------------------------------------------------------------


def test_attribution_by_message_id_beats_the_latest_send():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "send", at(9), "m1"),
            ev(0, EMAIL, "send", at(11), "m2"),
            ev(0, EMAIL, "click", at(12), "m1"),  # answers the 09:00 send, not the later one
        ),
        SignalSettings(),
    )
    click = clicks(sig).iloc[0]
    assert click["sent_at"] == at(9)
    assert click["delay_h"] == pytest.approx(3.0)


def test_attribution_without_ids_takes_the_latest_earlier_send_of_that_person_and_channel():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "send", at(9)),
            ev(0, EMAIL, "send", at(11)),
            ev(0, SMS, "send", at(11.5)),  # another channel
            ev(1, EMAIL, "send", at(11.75)),  # another person
            ev(0, EMAIL, "send", at(13)),  # after the click
            ev(0, EMAIL, "click", at(12)),
        ),
        SignalSettings(),
    )
    click = clicks(sig).iloc[0]
    assert click["sent_at"] == at(11)
    assert click["delay_h"] == pytest.approx(1.0)
    assert sig.stats["unattributed_engagements"] == 0


def test_attribution_window_and_engagement_before_any_send():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "click", at(8)),  # before any send
            ev(0, EMAIL, "send", at(9)),
            ev(0, EMAIL, "click", at(9 + 71)),  # 71 h later: inside attribution_hours=72
            ev(1, EMAIL, "send", at(9)),
            ev(1, EMAIL, "click", at(9 + 73)),  # 73 h later: too late to credit the send
        ),
        SignalSettings(),
    )
    got = clicks(sig).set_index(["sub", "at"])
    assert pd.isna(got.loc[(0, at(8)), "sent_at"]) and np.isnan(got.loc[(0, at(8)), "delay_h"])
    assert got.loc[(0, at(80)), "sent_at"] == at(9)
    assert got.loc[(0, at(80)), "delay_h"] == pytest.approx(71.0)
    assert pd.isna(got.loc[(1, at(82)), "sent_at"])
    assert sig.stats["unattributed_engagements"] == 2

    narrow = extract_signals(
        frame(ev(0, EMAIL, "send", at(9)), ev(0, EMAIL, "click", at(12))), SignalSettings(attribution_hours=2)
    )
    assert pd.isna(clicks(narrow).iloc[0]["sent_at"])


def test_shared_message_ids_attribute_to_each_persons_own_send():
    # some platforms reuse one id per campaign; a send-time optimised campaign goes out at other times per person
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "send", at(9), "campaign-7"),
            ev(1, EMAIL, "send", at(15), "campaign-7"),
            ev(0, EMAIL, "click", at(10), "campaign-7"),
            ev(1, EMAIL, "click", at(17), "campaign-7"),
        ),
        SignalSettings(),
    )
    got = clicks(sig).set_index("sub")
    assert got.loc[0, "sent_at"] == at(9) and got.loc[0, "delay_h"] == pytest.approx(1.0)
    assert got.loc[1, "sent_at"] == at(15) and got.loc[1, "delay_h"] == pytest.approx(2.0)


def test_shared_message_ids_do_not_hide_an_automated_reader():
    # campaign ids shared by both people; person 1 gets each campaign 6 h after person 0
    rows = []
    for d in range(5):
        for sub, hour, open_after in ((0, 9, pd.Timedelta(hours=3)), (1, 15, pd.Timedelta(seconds=10))):
            sent = at(hour, day=d)
            rows += [
                ev(sub, EMAIL, "send", sent, f"c{d}"),
                ev(sub, EMAIL, "delivered", sent + pd.Timedelta(seconds=1), f"c{d}"),
                ev(sub, EMAIL, "open", sent + pd.Timedelta(seconds=1) + open_after, f"c{d}"),
            ]
    sig = extract_signals(frame(*rows), SignalSettings())
    assert sig.stats["automated_readers"] == 1
    assert opens(sig)["sub"].tolist() == [0] * 5


def test_opens_only_export_keeps_engagements_unattributed():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "open", at(10)),
            ev(0, EMAIL, "open", at(10, day=1)),
            ev(1, EMAIL, "open", at(21)),
            ev(1, EMAIL, "click", at(21.1)),
        ),
        SignalSettings(),
    )
    assert sig.sends.empty and sig.stats["sends"] == 0
    assert len(opens(sig)) == 3 and len(clicks(sig)) == 1
    assert sig.engagements["sent_at"].isna().all()
    assert sig.engagements["delay_h"].isna().all()
    assert sig.stats["unattributed_engagements"] == 4
    assert sig.stats["automated_readers"] == 0


def test_deliveries_stand_in_for_sends_when_an_export_has_no_sends():
    sig = extract_signals(
        frame(ev(0, EMAIL, "delivered", at(9), "m1"), ev(0, EMAIL, "click", at(11), "m1")), SignalSettings()
    )
    assert sig.sends["at"].tolist() == [at(9)]
    assert clicks(sig)["delay_h"].tolist() == pytest.approx([2.0])


def test_engagements_are_time_ordered_with_the_documented_columns():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "send", at(9), "m1"),
            ev(0, SMS, "send", at(9), "m2"),
            ev(0, SMS, "click", at(9.5), "m2"),
            ev(0, EMAIL, "open", at(9.25), "m1"),
        ),
        SignalSettings(),
    )
    assert list(sig.engagements.columns) == ["sub", "channel", "at", "kind", "sent_at", "delay_h"]
    assert sig.engagements[["channel", "kind"]].values.tolist() == [[EMAIL, OPEN_KIND], [SMS, CLICK_KIND]]
    assert {"sub", "channel", "at"} <= set(sig.sends.columns)


# --- opt-outs ---------------------------------------------------------------------------------------


def test_bounces_and_unsubscribes_land_in_optouts():
    sig = extract_signals(
        frame(
            ev(0, EMAIL, "send", at(9), "m1"),
            ev(0, EMAIL, "bounce", at(9.01), "m1"),
            ev(1, SMS, "unsubscribe", at(12)),
            ev(1, SMS, "conversion", at(13)),  # neither an engagement signal nor an opt-out
        ),
        SignalSettings(),
    )
    assert sig.optouts[["sub", "channel", "at"]].values.tolist() == [[0, EMAIL, at(9.01)], [1, SMS, at(12)]]
    assert sig.stats["optouts"] == 2
    assert sig.engagements.empty
