"""One typed settings object for every stage, read from YAML.

Entry points call `load_settings(path)`; modules receive the object (or the section they need) as an
argument. Nothing here runs at import, so importing sendtime never reads files or the environment.
A YAML file only needs the keys it changes: the rest keep the defaults below (see `default.yaml`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSettings(_Section):
    bad_share_limit: float = Field(
        0.2, ge=0, le=1, description="fail when more than this share of rows is rejected"
    )
    default_region: str = Field("US", description="region for phone numbers written without a country code")
    default_timezone: str = Field("America/New_York", description="timezone when nothing else reveals it")
    salt_env: str = Field("SENDTIME_SALT", description="environment variable that may hold the hashing salt")
    salt: str = Field(
        "sendtime-default-salt", description="salt for address hashes when the env var is unset"
    )
    export_end_gap_days: float = Field(
        7,
        gt=0,
        description="event rows after a gap of more than this many days with no event are past the export's "
        "end (a stray future date) and rejected, when they are at most export_end_max_share of the rows",
    )
    export_end_max_share: float = Field(
        0.01, ge=0, le=1, description="at most this share of rows may be rejected as past the export's end"
    )


class IdentitySettings(_Section):
    max_addresses_per_channel: int = Field(
        1,
        ge=1,
        description="a link that would give one person more addresses than this on a channel is refused",
    )


class SignalSettings(_Section):
    machine_open_seconds: float = Field(
        120, gt=0, description="an open this soon after delivery looks automated"
    )
    machine_open_share: float = Field(
        0.7, ge=0, le=1, description="share of fast opens that marks an MPP reader"
    )
    machine_open_min_messages: int = Field(5, ge=1, description="messages needed before judging a reader")
    attribution_hours: float = Field(
        72, gt=0, description="an engagement answers the latest send this recent"
    )
    keep_late_opens_of_automated_readers: bool = Field(
        True, description="keep an automated reader's opens that come later than machine_open_seconds"
    )


class ProfileSettings(_Section):
    half_life_days: float = Field(
        90,
        gt=0,
        description="weight of an event halves with this age, relative within the person (rates; shapes without held-out data)",
    )
    half_life_grid: list[float] = Field(
        default_factory=lambda: [30, 90, 365, 0],
        description="half lives (days; 0: no decay) tried per channel on the held-out blocks for the shapes (one: no search)",
    )
    shrinkage_grid: list[float] = Field(default_factory=lambda: [0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    holdout_days: float = Field(
        14, gt=0, description="length of each held-out block used to choose the shrinkage strengths"
    )
    holdout_min_share: float = Field(
        0.2, ge=0, lt=1, description="widen the held-out tail until it holds this share of the engagements"
    )
    holdout_folds: int = Field(
        4,
        ge=1,
        description="held-out blocks of holdout_days (the last, then earlier ones), each predicted from the rest",
    )
    min_events_for_activity_tz: int = Field(20, ge=1, description="engagements needed to infer a timezone")
    shrinkage_overrides: dict[str, dict[str, float]] | None = Field(
        None,
        description="per channel, strengths that replace the chosen ones (e.g. written by `sendtime tune`)",
    )
    bounce_run: int = Field(
        3,
        ge=1,
        description="soft or untyped bounces in a row (no delivery, open or click between) that suppress an address",
    )
    bounce_run_days: float = Field(
        14,
        ge=0,
        description="...and the days the run must span, first bounce to last (see features/suppression.py)",
    )


class TrainingSettings(_Section):
    label_hours: float = Field(24, gt=0)
    # null: chosen from the data span (training/split_design.py: 4, 14 and 14 from 63 days of data,
    # fewer and shorter below, a profile-only decision maker below 21 days); a value given here wins
    snapshots: int | None = Field(
        None, ge=1, description="point-in-time profile snapshots used to label training sends (null: auto)"
    )
    test_days: float | None = Field(None, gt=0, description="days of test sends at the end (null: auto)")
    validation_days: float | None = Field(
        None, gt=0, description="days of validation sends before the test (null: auto)"
    )
    max_training_rows: int = Field(2_000_000, ge=1000)
    lgbm: dict[str, Any] = Field(
        default_factory=lambda: {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 100,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "verbose": -1,
            "num_threads": 2,
        }
    )
    num_boost_round: int = Field(400, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    gate_metric: str = Field("log_loss", description="lower is better")
    gate_margin: float = Field(
        0.0, ge=0, description="relative improvement a challenger needs over the champion"
    )
    gate_decision_tolerance: float = Field(
        0.005,
        ge=0,
        description="how far a challenger's decision measure (capture, or engagement in the chosen windows) "
        "may fall below the champion's",
    )
    gate_max_reject_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="a model trained when more of the event rows were rejected is not promoted",
    )
    gate_window_hours: int = Field(
        3,
        ge=1,
        le=24,
        description="width of each day's chosen window in the held-out engagement measure (no ground truth)",
    )
    allow_kind_change: bool = Field(
        False,
        description="let a model trained on another kind of data (activity vs send_response) replace the champion",
    )
    hour_source: Literal["auto", "model", "profile"] = Field(
        "auto",
        description="who ranks a channel's hours: auto = the model, unless on held-out engagement its hours "
        "hold less than the profile's (training/hour_guard.py); model or profile forces it",
    )
    hour_guard_tolerance: float = Field(
        0.0,
        ge=0,
        description="how far the model's held-out window share may fall below the profile's before the "
        "profile ranks the hours (hour_source: auto)",
    )
    registered_model: str = "sendtime-engagement"
    experiment: str = "sendtime"


class QuietHours(_Section):
    start: int = Field(8, ge=0, le=23)
    end: int = Field(21, ge=1, le=24)


class PolicySettings(_Section):
    click_value: float = Field(1.0, ge=0, description="value of one click, in the same unit as sms_cost")
    sms_cost: float = Field(0.01, ge=0, description="cost of one SMS")
    window_hours: int = Field(1, ge=1, description="width of the returned best window")
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    state_rules_file: str | None = Field(
        None, description="CSV overriding the built-in US state quiet-hour rules"
    )
    min_spacing_hours: dict[str, float] = Field(default_factory=lambda: {"email": 12.0, "sms": 24.0})
    explore_share: float = Field(0.0, ge=0, le=1)
    followup_min_hours: float = Field(4, ge=0)
    followup_max_hours: float = Field(8, gt=0)
    followup_min_gain: float = Field(0.002, ge=0)


class ServingSettings(_Section):
    max_subscribers_per_request: int = Field(5000, ge=1)
    max_window_days: float = Field(14, gt=0)
    api_key_env: str = "SENDTIME_API_KEY"
    reload_poll_seconds: float = Field(30, ge=0, description="0 turns alias polling off")
    threads: int = Field(2, ge=1, description="requests one service worker computes at once (the rest wait)")


class DriftSettings(_Section):
    max_profile_distance: float = Field(
        0.25,
        ge=0,
        le=1,
        description="warn when a channel's population hour-of-week profile is this far (total variation) from the champion's",
    )
    max_engagement_change: float = Field(
        0.3,
        ge=0,
        description="warn when the recent weeks' click rate per send differs by this share from the earlier weeks'",
    )
    recent_weeks: int = Field(
        2, ge=1, description="the export's last weeks compared with the weeks before them"
    )
    engagement_z: float = Field(
        3.0,
        ge=0,
        description="and only when the change is this many standard errors (two-proportion z) from zero",
    )
    min_sends: int = Field(
        200, ge=1, description="sends needed on each side before the engagement change counts"
    )


class Settings(_Section):
    data: DataSettings = Field(default_factory=DataSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    signals: SignalSettings = Field(default_factory=SignalSettings)
    profiles: ProfileSettings = Field(default_factory=ProfileSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)

    def salt(self) -> str:
        """The hashing salt: the environment wins so that deployments keep it out of files."""
        return os.environ.get(self.data.salt_env) or self.data.salt


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(path: str | Path | None = None, overrides: dict | None = None) -> Settings:
    """Read settings from YAML (defaults when `path` is None); `overrides` is merged on top."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path}: expected a mapping at the top level")
        raw = loaded
    if overrides:
        raw = _merge(raw, overrides)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        where = f"config file {path}" if path else "settings"
        raise ValueError(f"{where}: {exc}") from exc
