"""Labelled examples without leakage: past sends, each with features as of a snapshot before it.

Point-in-time by construction: the send period [T, T') is labelled with profiles built from events
before T only, and a send is labelled only when its whole label horizon lies inside the data. Splits
are ordered in time: training snapshots, then validation weeks, then the test weeks, never random;
how many and how long is chosen from the data span unless the config says (training/split_design.py).

Exports without sends (opens and clicks only) have no send to label; there the examples are
subscriber x hour-of-week cells of the following week, labelled by whether the person engaged in that
hour ("activity" kind): the champion then ranks hours by when people engage, and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features.model_features import feature_matrix, gather_rows
from sendtime.features.prepare import FeatureBase
from sendtime.features.profiles import Profiles, build_profiles
from sendtime.features.signals import CLICK_KIND
from sendtime.features.strengths import NAMES as STRENGTH_NAMES
from sendtime.features.strengths import Shrinkage
from sendtime.training import split_design

log = logging.getLogger(__name__)

SEND_RESPONSE = "send_response"  # labels: a click within label_hours of a send
ACTIVITY = (
    "activity"  # labels: an engagement in that local hour of the following week (no sends in the export)
)
NEGATIVE_HOURS_PER_PERSON = 24


@dataclass
class Split:
    name: str
    profiles: Profiles
    cells: pd.DataFrame  # sub, channel, how, at (send time or NaT), label
    X: np.ndarray = field(repr=False, default=None)

    @property
    def y(self) -> np.ndarray:
        return self.cells["label"].to_numpy()


@dataclass
class Examples:
    kind: str
    train: Split
    validation: Split
    test: Split
    shrinkage: Shrinkage
    boundaries: dict[str, str]
    design: split_design.SplitDesign | None = None


def label_sends(
    base: FeatureBase, start: pd.Timestamp, end: pd.Timestamp, label_hours: float, data_end: pd.Timestamp
) -> pd.DataFrame:
    """Sends in [start, end) whose label horizon is observed, labelled 1 when a click followed in time."""
    horizon = pd.Timedelta(hours=label_hours)
    sends = base.sends[
        (base.sends["at"] >= start) & (base.sends["at"] < end) & (base.sends["at"] + horizon <= data_end)
    ]
    sends = sends.reset_index(drop=True)
    clicks = base.engagements[base.engagements["kind"] == CLICK_KIND][["sub", "channel", "at"]]
    left = sends.reset_index().sort_values("at")
    right = clicks.rename(columns={"at": "click_at"}).sort_values("click_at")
    nxt = pd.merge_asof(
        left, right, left_on="at", right_on="click_at", by=["sub", "channel"], direction="forward"
    )
    nxt = nxt.set_index("index").sort_index()
    label = (nxt["click_at"] - nxt["at"]) <= horizon
    return pd.DataFrame(
        {
            "sub": sends["sub"].to_numpy(),
            "channel": sends["channel"].to_numpy(),
            "how": sends["how"].to_numpy(),
            "at": sends["at"],
            "label": label.to_numpy().astype(np.int8),
        }
    )


def label_activity(base: FeatureBase, start: pd.Timestamp, end: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Opens-only exports: each engaged person's engaged hours (1) and a sample of other hours (0)."""
    eng = base.engagements[(base.engagements["at"] >= start) & (base.engagements["at"] < end)]
    pos = eng.drop_duplicates(["sub", "channel", "how"])[["sub", "channel", "how"]]
    people = pos.drop_duplicates(["sub", "channel"])
    rng = np.random.default_rng(seed)
    neg = people.loc[people.index.repeat(NEGATIVE_HOURS_PER_PERSON)].copy()
    neg["how"] = rng.integers(0, S.HOURS_PER_WEEK, len(neg))
    cells = pd.concat([pos.assign(label=1), neg.assign(label=0)], ignore_index=True)
    cells = cells.drop_duplicates(["sub", "channel", "how"], keep="first")
    cells["at"] = pd.NaT
    return cells.reset_index(drop=True)


def _features(profiles: Profiles, cells: pd.DataFrame) -> np.ndarray:
    rows = gather_rows(profiles, np.arange(len(profiles)))
    return feature_matrix(
        rows, profiles, cells["sub"].to_numpy(), cells["channel"].to_numpy(), cells["how"].to_numpy()
    )


class TooFewExamples(ValueError):
    """A period of the split has no labelled examples with both outcomes (too few sends or clicks)."""


def boundaries(base: FeatureBase, settings: Settings) -> dict[str, pd.Timestamp]:
    """The split's instants, from the design `split_design.for_span` chooses (config values win)."""
    start, end = base.span
    design = split_design.for_span(start, end, settings.training)
    if design.profile_only:
        raise ValueError(
            f"the data spans {start:%Y-%m-%d} to {end:%Y-%m-%d} ({design.span_days:.1f} days): too short to "
            f"train and test a model ({split_design.PROFILE_ONLY_WHY}); `sendtime train` registers a "
            "profile-only decision maker for such data"
        )
    test_start = end - pd.Timedelta(days=design.test_days)
    val_start = test_start - pd.Timedelta(days=design.validation_days)
    first = val_start - pd.Timedelta(days=7 * design.snapshots)
    return {"start": start, "first_snapshot": first, "validation": val_start, "test": test_start, "end": end}


def apply_shrinkage_overrides(
    shrinkage: Shrinkage, overrides: dict[str, dict[str, float]] | None
) -> Shrinkage:
    """`profiles.shrinkage_overrides` (e.g. written by `sendtime tune`) replace chosen strengths per channel.

    Only the keys given change; the rest keep the held-out choice. Unknown channels or keys fail early.
    """
    if not overrides:
        return shrinkage
    out = shrinkage
    for channel, values in overrides.items():
        if channel not in S.CHANNELS:
            raise ValueError(
                f"profiles.shrinkage_overrides: unknown channel {channel!r} (expected one of {list(S.CHANNELS)})"
            )
        unknown = sorted(set(values) - set(STRENGTH_NAMES))
        if unknown:
            raise ValueError(
                f"profiles.shrinkage_overrides.{channel}: unknown keys {unknown} "
                f"(expected some of {sorted(STRENGTH_NAMES)})"
            )
        out = out.with_channel(channel, out[channel].with_values(values))
    return out


def build_examples(
    base: FeatureBase, settings: Settings, shrinkage: Shrinkage | None = None, progress: bool = False
) -> Examples:
    """Training snapshots every 7 days before validation; validation and test each as of their start."""
    t = settings.training
    b = boundaries(base, settings)
    design = split_design.for_span(b["start"], b["end"], t)
    kind = SEND_RESPONSE if base.has_sends else ACTIVITY
    if shrinkage is None:  # chosen on the weeks before validation, then any configured overrides
        shrinkage = apply_shrinkage_overrides(
            build_profiles(base, b["validation"], settings.profiles).shrinkage,
            settings.profiles.shrinkage_overrides,
        )

    def split(
        name: str, start: pd.Timestamp, end: pd.Timestamp, seed: int
    ) -> tuple[Profiles, pd.DataFrame, np.ndarray]:
        profiles = build_profiles(base, start, settings.profiles, shrinkage)
        if kind == SEND_RESPONSE:
            cells = label_sends(base, start, end, t.label_hours, b["end"])
        else:
            cells = label_activity(base, start, end, seed)
        return profiles, cells, _features(profiles, cells)

    snaps = [b["first_snapshot"] + pd.Timedelta(days=7 * j) for j in range(design.snapshots)]
    iterator = snaps
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(snaps, desc="training snapshots", unit="snapshot", disable=None)
    parts = [split("train", s, s + pd.Timedelta(days=7), j) for j, s in enumerate(iterator)]
    train_cells = pd.concat([p[1] for p in parts], ignore_index=True)
    train_X = np.concatenate([p[2] for p in parts])
    if len(train_cells) > t.max_training_rows:
        keep = np.sort(np.random.default_rng(0).choice(len(train_cells), t.max_training_rows, replace=False))
        train_cells, train_X = train_cells.iloc[keep].reset_index(drop=True), train_X[keep]
    vp, vc, vx = split("validation", b["validation"], b["test"], 101)
    tp, tc, tx = split("test", b["test"], b["end"], 202)
    for name, cells in (("training", train_cells), ("validation", vc), ("test", tc)):
        if len(cells) == 0 or cells["label"].nunique() < 2:
            raise TooFewExamples(
                f"the {name} period has no usable labelled examples with both outcomes ({len(cells)} rows)"
            )
    log.info(
        "examples (%s): train %s, validation %s, test %s cells",
        kind,
        f"{len(train_cells):,}",
        f"{len(vc):,}",
        f"{len(tc):,}",
    )
    return Examples(
        kind=kind,
        train=Split("train", parts[-1][0], train_cells, train_X),
        validation=Split("validation", vp, vc, vx),
        test=Split("test", tp, tc, tx),
        shrinkage=shrinkage,
        boundaries={k: str(v) for k, v in b.items()},
        design=design,
    )
