"""The promotion gate: whether a newly trained version may take the `champion` alias, and why not.

A pure function of the two models' figures, so every rule is checked on hand-made numbers. The figures
are comparable because the caller measured both models on the *same* test cells (the same labelled
sends), each with features built by its own recipe (`workflows.champion`). A challenger is refused when:

- a large share of the export's event rows was rejected (`training.gate_max_reject_share`): the model
  learnt from what was left, and what was left may not be the audience;
- a channel that carried the champion's data is (nearly) gone: typically every SMS row was rejected;
- its test log loss is worse than the best baseline's: a rule of thumb would then decide better;
- it was trained on another kind of data than the champion ("activity" from an opens-only export
  against "send_response"), unless `training.allow_kind_change` (`sendtime train --allow-kind-change`)
  says so; when allowed, the two cannot be compared on one test set and only the baselines judge it;
- it does not beat the champion's log loss by `training.gate_margin`, or its decision measure (capture
  where there is ground truth, else the held-out engagement share inside the chosen windows) is below
  the champion's by more than `training.gate_decision_tolerance`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# a channel counts as lost when its share of the events falls below this fraction of its share in the
# champion's data (a channel with 16% of the rows then needs 1.6%): a few SMS rows that survive a broken
# phone column do not make the channel present
LOST_CHANNEL_RATIO = 0.1
KIND_NAMES = {"send_response": "sends and their clicks", "activity": "opens and clicks only, no sends"}


@dataclass(frozen=True)
class Figures:
    """What the gate knows of one model; None where a figure does not exist (no champion score, ...)."""

    kind: str
    log_loss: float | None = None
    decision: float | None = None
    channel_events: Mapping[str, int] | None = None  # usable events per channel in its training data
    reject_share: float | None = None  # rejected share of the export's event rows


@dataclass(frozen=True)
class Rules:
    margin: float = 0.0
    decision_tolerance: float = 0.005
    max_reject_share: float = 0.05
    allow_kind_change: bool = False
    decision_name: str = "decision measure"

    @classmethod
    def from_settings(cls, training, decision_name: str = "decision measure") -> Rules:
        return cls(
            margin=training.gate_margin,
            decision_tolerance=training.gate_decision_tolerance,
            max_reject_share=training.gate_max_reject_share,
            allow_kind_change=training.allow_kind_change,
            decision_name=decision_name,
        )


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)  # why not; empty when promoted
    notes: list[str] = field(default_factory=list)  # what the user should know either way
    codes: list[str] = field(default_factory=list)  # short names of the refusing rules, for tags

    def line(self) -> str:
        """One line for the output and the MLflow tag."""
        head = "promoted to champion: yes" if self.promote else "promoted to champion: no"
        parts = self.reasons + self.notes
        return head + (": " + "; ".join(parts) if parts else "")


def _known(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def lost_channels(champion: Mapping[str, int] | None, challenger: Mapping[str, int] | None) -> list[str]:
    """Channels with a share of the champion's events whose share now is below LOST_CHANNEL_RATIO of it."""
    if not champion or challenger is None:
        return []
    before, now = sum(champion.values()), sum(challenger.values())
    lost = []
    for channel, n in champion.items():
        if n <= 0 or before <= 0:
            continue
        share_before = n / before
        share_now = challenger.get(channel, 0) / now if now > 0 else 0.0
        if share_now < LOST_CHANNEL_RATIO * share_before:
            lost.append(channel)
    return lost


def decide(
    challenger: Figures,
    best_baseline_log_loss: float | None,
    champion: Figures | None,
    rules: Rules,
) -> Decision:
    """Promote or not, with every reason that applies (all rules are checked, not only the first)."""
    d = Decision(promote=True)

    def refuse(code: str, reason: str) -> None:
        d.promote = False
        d.codes.append(code)
        d.reasons.append(reason)

    share = challenger.reject_share
    if _known(share) and share > rules.max_reject_share:
        refuse(
            "rejects",
            f"{share:.1%} of the event rows were rejected (more than training.gate_max_reject_share="
            f"{rules.max_reject_share:.0%}; see rejects.csv)",
        )
    if champion is not None:
        for channel in lost_channels(champion.channel_events, challenger.channel_events):
            had = champion.channel_events[channel] / max(sum(champion.channel_events.values()), 1)
            has = (challenger.channel_events or {}).get(channel, 0)
            refuse(
                "lost_channel",
                f"{channel} carried {had:.0%} of the champion's data but has {has:,} usable events now "
                "(were its rows rejected?)",
            )
    if (
        _known(challenger.log_loss)
        and _known(best_baseline_log_loss)
        and challenger.log_loss > best_baseline_log_loss
    ):
        refuse(
            "worse_than_baseline",
            f"test log loss {challenger.log_loss:.5f} is worse than the best baseline's "
            f"{best_baseline_log_loss:.5f}",
        )
    if champion is None:
        return d

    comparable = champion.kind == challenger.kind
    if not comparable:
        change = f"{champion.kind} ({KIND_NAMES.get(champion.kind, '?')}) -> {challenger.kind} ({KIND_NAMES.get(challenger.kind, '?')})"
        if rules.allow_kind_change:
            d.notes.append(
                f"kind change {change} allowed by training.allow_kind_change; judged on the baselines"
            )
        else:
            refuse(
                "kind_change",
                f"trained on another kind of data than the champion: {change}; pass --allow-kind-change "
                "(training.allow_kind_change) to let it replace the champion",
            )
        return d
    if _known(champion.log_loss) and _known(challenger.log_loss):
        bar = champion.log_loss * (1.0 - rules.margin)
        if not challenger.log_loss < bar:
            refuse(
                "not_better",
                f"test log loss {challenger.log_loss:.5f} does not beat the champion's {champion.log_loss:.5f}"
                + (f" by training.gate_margin={rules.margin:g}" if rules.margin else "")
                + " on the same test cells",
            )
    if (
        _known(champion.decision)
        and _known(challenger.decision)
        and challenger.decision < champion.decision - rules.decision_tolerance
    ):
        refuse(
            "worse_decisions",
            f"{rules.decision_name} {challenger.decision:.4f} is below the champion's "
            f"{champion.decision:.4f} on the same test cells (tolerance {rules.decision_tolerance:g})",
        )
    return d
