"""The promotion gate's rules and the held-out window measure, on hand-made figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sendtime.training import decision
from sendtime.training.gate import Figures, Rules, decide, lost_channels

CHANNELS = {"email": 800, "sms": 200}


def challenger(**kw) -> Figures:
    base = dict(
        kind="send_response", log_loss=0.100, decision=0.80, channel_events=CHANNELS, reject_share=0.0
    )
    return Figures(**{**base, **kw})


def champion(**kw) -> Figures:
    base = dict(kind="send_response", log_loss=0.105, decision=0.78, channel_events=CHANNELS)
    return Figures(**{**base, **kw})


def test_a_better_model_is_promoted_with_no_reason():
    d = decide(challenger(), 0.110, champion(), Rules())
    assert d.promote and d.reasons == [] and d.codes == []
    assert d.line() == "promoted to champion: yes"


def test_the_first_model_is_promoted_when_it_beats_the_baselines():
    assert decide(challenger(), 0.110, None, Rules()).promote


@pytest.mark.parametrize("champ", [None, champion(log_loss=0.2, decision=0.1)])
def test_a_model_worse_than_the_best_baseline_is_never_promoted(champ):
    d = decide(challenger(log_loss=0.120), 0.110, champ, Rules())
    assert not d.promote and d.codes == ["worse_than_baseline"]
    assert "worse than the best baseline's 0.11000" in d.line()


def test_a_kind_change_is_refused_without_the_flag():
    d = decide(challenger(kind="activity"), 0.110, champion(log_loss=0.5), Rules())
    assert not d.promote and d.codes == ["kind_change"]
    assert "--allow-kind-change" in d.line() and "send_response" in d.line() and "activity" in d.line()


def test_a_kind_change_with_the_flag_is_judged_on_the_baselines_only():
    rules = Rules(allow_kind_change=True)
    # the champion's figures come from other labels: they do not count, even when they look better
    d = decide(challenger(kind="activity"), 0.110, champion(log_loss=0.01, decision=0.99), rules)
    assert d.promote and "allowed" in d.line()
    # ...but the baselines still do
    bad = decide(challenger(kind="activity", log_loss=0.2), 0.110, champion(), rules)
    assert not bad.promote and bad.codes == ["worse_than_baseline"]


def test_a_large_reject_share_is_never_promoted():
    d = decide(challenger(reject_share=0.08), 0.110, None, Rules(max_reject_share=0.05))
    assert not d.promote and d.codes == ["rejects"]
    assert "8.0% of the event rows were rejected" in d.line()
    assert decide(challenger(reject_share=0.05), 0.110, None, Rules(max_reject_share=0.05)).promote


def test_a_lost_channel_is_refused():
    gone = {"email": 900, "sms": 0}
    d = decide(challenger(channel_events=gone), 0.110, champion(), Rules())
    assert not d.promote and d.codes == ["lost_channel"]
    assert "sms carried 20% of the champion's data but has 0 usable events now" in d.line()


def test_lost_channels_counts_shares_not_rows():
    assert lost_channels(CHANNELS, {"email": 8000, "sms": 2000}) == []  # ten times the data, same mix
    assert lost_channels(CHANNELS, {"email": 800, "sms": 10}) == ["sms"]  # 1.2% < a tenth of 20%
    assert lost_channels(CHANNELS, {"email": 800, "sms": 30}) == []
    assert lost_channels({"email": 1000, "sms": 0}, {"email": 10, "sms": 0}) == []  # never had sms
    assert lost_channels(None, {"email": 1}) == []  # an old champion without the record


def test_the_champion_must_be_beaten_on_log_loss_by_the_margin():
    assert not decide(challenger(log_loss=0.105), 0.110, champion(), Rules()).promote  # a tie
    d = decide(challenger(log_loss=0.104), 0.110, champion(), Rules(margin=0.05))
    assert not d.promote and d.codes == ["not_better"] and "gate_margin=0.05" in d.line()


def test_a_better_log_loss_with_worse_decisions_is_refused():
    rules = Rules(decision_tolerance=0.01, decision_name="capture")
    d = decide(challenger(decision=0.76), 0.110, champion(decision=0.78), rules)
    assert not d.promote and d.codes == ["worse_decisions"]
    assert "capture 0.7600 is below the champion's 0.7800" in d.line()
    assert decide(challenger(decision=0.775), 0.110, champion(decision=0.78), rules).promote


def test_every_refusing_rule_is_reported():
    c = challenger(kind="send_response", log_loss=0.2, reject_share=0.3, channel_events={"email": 5})
    d = decide(c, 0.110, champion(), Rules())
    assert d.codes == ["rejects", "lost_channel", "worse_than_baseline", "not_better"]
    assert d.line().startswith("promoted to champion: no: ")


def test_a_champion_without_scores_is_compared_on_what_it_has():
    d = decide(challenger(), 0.110, champion(log_loss=None, decision=None), Rules())
    assert d.promote


# --------------------------------------------------------------------------- held-out window share
def test_chosen_windows_take_each_days_best_hour_and_wrap_past_midnight():
    scores = np.zeros((1, 168))
    scores[0, 10] = 1.0  # Monday 10:00
    scores[0, 24 + 23] = 1.0  # Tuesday 23:00: its window runs into Wednesday
    covered = decision.chosen_windows(scores, 3)
    assert covered[0, [10, 11, 12]].all() and not covered[0, 13]
    assert covered[0, [47, 48, 49]].all()
    # other days: ties go to midnight, and Wednesday's midnight window overlaps Tuesday's
    assert covered[0, 48 + 2] and covered[0].sum() == 3 * 7 - 2


def test_window_share_counts_engagements_inside_the_models_windows(monkeypatch):
    # two people on e-mail; the "model" scores the hour-of-week column itself: it prefers 23:00 every
    # day, so its windows (width 2) are 23:00-00:59 each day
    def fake_gather(profiles, rows):
        return np.asarray(rows)

    def fake_matrix(g, profiles, idx, channel, how):
        return np.column_stack([how % 24, idx])

    monkeypatch.setattr(decision, "gather_rows", fake_gather)
    monkeypatch.setattr(decision, "feature_matrix", fake_matrix)
    held = pd.DataFrame(
        {
            "sub": [0, 0, 0, 1],
            "channel": [0, 0, 0, 0],
            "how": [23, 24, 22, 24 * 3 + 23],  # Mon 23:00 in, Tue 00:00 in, Mon 22:00 out; Thu 23:00 in
        }
    )
    share = decision.window_share(lambda X: X[:, 0].astype(float), None, held, window_hours=2)
    assert share == pytest.approx(3 / 4)
    # the same engagements judged for a model that prefers 22:00
    share = decision.window_share(lambda X: -abs(X[:, 0] - 22.0), None, held, window_hours=1)
    assert share == pytest.approx(1 / 4)
    assert np.isnan(decision.window_share(lambda X: X[:, 0], None, held.iloc[:0], window_hours=2))


# ------------------------------------------------------------------------------ tune's best trial
def test_tune_picks_the_best_decision_then_the_lowest_log_loss_within_the_tolerance():
    from sendtime.workflows.tune import pick_best

    trials = [(0, 0.100, 0.70), (1, 0.090, 0.60), (2, 0.105, 0.748), (3, 0.102, 0.75)]
    assert pick_best(trials, 0.005) == 3  # trial 1 has the lowest log loss but decides worse
    assert pick_best(trials, 0.0) == 3
    assert pick_best(trials, 0.06) == 0  # 0.70 is within 0.06 of 0.75: then the lowest log loss wins
    # trials from before the measure was recorded count only when none has it
    assert pick_best([(0, 0.09, None), (1, 0.10, 0.5)], 0.005) == 1
    assert pick_best([(0, 0.09, None), (1, 0.08, None)], 0.005) == 1
    assert pick_best([], 0.005) is None
