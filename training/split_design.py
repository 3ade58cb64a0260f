"""How a data span is cut into training snapshots, validation and test: chosen from the span itself.

Exports come in every length (many platforms keep 60 days), and a user cannot be expected to tune split
settings before the first run. So `training.snapshots`, `validation_days` and `test_days` default to
null, meaning "adapt to the data", and any of them set in a config wins. Laid out from the end of the
data backwards: test, validation, the weekly training snapshots, and before them the history the first
snapshot's profiles are built from.

Why 21 days is the least a model is trained on (`MIN_MODEL_DAYS`); below it `train` registers a
profile-only decision maker (training/profile_only.py) instead:
- 7 days of history before the first snapshot: one whole weekly cycle, so the first profiles have
  seen every weekday before they label a send (shorter, and the model learns from profiles that have
  never seen a weekend);
- 7 days of labelled training sends (one snapshot): every hour of the week sent at least once;
- 3.5 days of validation and 3.5 of test, together one week: validation stops the boosting and
  calibrates the baselines, test is the out-of-time check the gate and the printed numbers rest on.
  Less than half a week of test sends is a handful of clicks per hour of day on a small export: the
  comparison with the baselines would be noise, so it would not be an honest test.

As the span grows, the free settings grow in this order: the snapshots to 2, validation and test to a
full week each (every weekday tested), the snapshots up to 4, then validation and test up to 14 days
(steadier figures); days that complete none of these lengthen the history, so no part ever shrinks as
the data grow. Labelled sends come first because they mattered more: on three simulated 28-day worlds
(1,500 people) two snapshots with 3.5-day periods beat the best baseline's test log loss by 0.004-0.009,
one snapshot with 7-day periods by -0.002 to 0.001 (worse, on one). At 42 days 3 snapshots with 7-day
periods and 4 with 3.5-day ones did about equally well, so there the full test week wins. Exports of 63 days and more get exactly the design used before
(4 snapshots, 14 + 14 days). Periods are whole half-days; a span short of a whole day by less than
`SLACK_DAYS` (exports end a few minutes before midnight) counts as that day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

HISTORY_DAYS = 7.0  # history before the first training snapshot: one weekly cycle
SNAPSHOT_DAYS = 7.0  # each training snapshot labels one week of sends
MIN_PERIOD_DAYS = 3.5  # validation and test each: together one week
WEEK_PERIOD_DAYS = 7.0  # grown to this first: every weekday in the test
MAX_PERIOD_DAYS = 14.0  # the design for long exports
MAX_SNAPSHOTS = 4
FIRST_SNAPSHOTS = 2  # grown to this before validation and test grow past MIN_PERIOD_DAYS
MIN_MODEL_DAYS = HISTORY_DAYS + SNAPSHOT_DAYS + 2 * MIN_PERIOD_DAYS  # 21
SLACK_DAYS = 1.0 / 24  # the history may be short of HISTORY_DAYS by this much
STEP_DAYS = 0.5  # free periods are whole multiples of this
SETTING_NAMES = ("snapshots", "validation_days", "test_days")
PROFILE_ONLY_WHY = (
    f"a model needs at least {MIN_MODEL_DAYS:g} days: a week of history, a week of labelled training "
    "sends, and a week shared by validation and test"
)


@dataclass(frozen=True)
class SplitDesign:
    """The chosen cut. `profile_only`: too short to train and test a model (the other numbers are 0)."""

    span_days: float
    snapshots: int
    validation_days: float
    test_days: float
    profile_only: bool = False
    given: tuple[str, ...] = field(default=())  # the settings taken from the config (the rest adapted)

    @property
    def history_days(self) -> float:
        """Data before the first training snapshot (the whole span for a profile-only design)."""
        used = self.snapshots * SNAPSHOT_DAYS + self.validation_days + self.test_days
        return max(self.span_days - used, 0.0)

    def describe(self) -> str:
        """The one line `sendtime train` prints and logs (tag `split_design`)."""
        if self.profile_only:
            return (
                f"split design: {self.span_days:.1f} days of data are too short to train and test a model "
                f"({PROFILE_ONLY_WHY}): a profile-only decision maker is registered instead"
            )
        source = (
            "chosen for the data span"
            if not self.given
            else f"{', '.join(f'training.{g}' for g in self.given)} from the config, the rest chosen for the span"
            if len(self.given) < len(SETTING_NAMES)
            else "from the config"
        )
        return (
            f"split design ({source}): {self.span_days:.1f} days = {self.history_days:.1f} days of history, "
            f"{self.snapshots} weekly training snapshot{'s' * (self.snapshots != 1)}, "
            f"{self.validation_days:g} validation days, {self.test_days:g} test days"
        )

    def params(self) -> dict[str, object]:
        """MLflow params of the design (the `split_` prefix keeps them apart from the model's)."""
        return {
            "split_span_days": round(self.span_days, 3),
            "split_profile_only": self.profile_only,
            "split_snapshots": self.snapshots,
            "split_validation_days": self.validation_days,
            "split_test_days": self.test_days,
            "split_history_days": round(self.history_days, 3),
            "split_given": ",".join(self.given) or "none",
        }


def choose(
    span_days: float,
    snapshots: int | None = None,
    validation_days: float | None = None,
    test_days: float | None = None,
) -> SplitDesign:
    """The design for `span_days` of data; a value given (not None) is kept as it is.

    Raises ValueError when given values do not fit the span (they win, so nothing is shrunk to fit
    them); returns a profile-only design when nothing was given and the span is below MIN_MODEL_DAYS.
    """
    given = tuple(
        name
        for name, value in zip(SETTING_NAMES, (snapshots, validation_days, test_days), strict=True)
        if value is not None
    )
    room = span_days + SLACK_DAYS - HISTORY_DAYS  # what snapshots, validation and test may use
    n = snapshots if snapshots is not None else 1
    periods = {
        "validation_days": validation_days if validation_days is not None else MIN_PERIOD_DAYS,
        "test_days": test_days if test_days is not None else MIN_PERIOD_DAYS,
    }
    free = [name for name in periods if name not in given]

    def left() -> float:
        return room - n * SNAPSHOT_DAYS - sum(periods.values())

    if left() < -1e-9:
        if given:
            raise ValueError(
                f"the data spans {span_days:.1f} days: too short for "
                f"{n} weekly training snapshot{'s' * (n != 1)}, {periods['validation_days']:g} validation days "
                f"and {periods['test_days']:g} test days after {HISTORY_DAYS:g} days of history; "
                f"{', '.join(f'training.{g}' for g in given)} {'is' if len(given) == 1 else 'are'} set in the "
                "config: lower them, or remove them to let sendtime choose for the span"
            )
        return SplitDesign(span_days, 0, 0.0, 0.0, profile_only=True)

    def grow(limit: float) -> None:
        if not free:
            return
        each = (left() + sum(periods[f] for f in free)) / len(free)
        value = min(limit, math.floor(each / STEP_DAYS + 1e-9) * STEP_DAYS)
        for f in free:
            periods[f] = max(periods[f], value)

    def add_snapshots(limit: int) -> int:
        if snapshots is not None:
            return n
        return max(n, min(limit, math.floor((left() + n * SNAPSHOT_DAYS) / SNAPSHOT_DAYS + 1e-9)))

    # each step only once the one before is complete, else the rest is history: nothing shrinks later
    n = add_snapshots(FIRST_SNAPSHOTS)
    if n >= FIRST_SNAPSHOTS or snapshots is not None:
        grow(WEEK_PERIOD_DAYS)
        n = add_snapshots(MAX_SNAPSHOTS)
    if n >= MAX_SNAPSHOTS or snapshots is not None:
        grow(MAX_PERIOD_DAYS)
    return SplitDesign(span_days, n, periods["validation_days"], periods["test_days"], given=given)


def for_span(start, end, training) -> SplitDesign:
    """The design for data from `start` to `end` (timestamps) under the `training` settings."""
    span_days = (end - start).total_seconds() / 86400.0
    return choose(span_days, training.snapshots, training.validation_days, training.test_days)


def log_to_mlflow(design: SplitDesign) -> None:
    """Params and a one-line tag of the design on the active MLflow run."""
    import mlflow

    mlflow.log_params(design.params())
    mlflow.set_tags({"split_design": design.describe()})
