"""The shrinkage strengths of a profile build: how far each channel's shapes lean on their priors.

Chosen on held-out blocks (features/shrinkage.py), stored with every profile snapshot (`meta.json`)
and MLflow run (`data.json`, `shrinkage_*` params), and replaced in part by
`profiles.shrinkage_overrides`. Those stores hold the plain JSON form (`to_dict`): channel -> name ->
number, every strength a float, as they always have, so snapshots and runs written before these
classes existed load unchanged, and new ones read the same to older tools.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace

from sendtime import schema as S

# what a search records about itself beside the strengths; absent (None) where it did not judge
DIAGNOSTICS = (
    "heldout_rows",
    "heldout_folds",
    "heldout_loglik_population",
    "heldout_loglik",
    "heldout_loglik_cohort",
)
_COUNTS = ("heldout_rows", "heldout_folds")


@dataclass(frozen=True)
class ChannelStrengths:
    """One channel's strengths; the defaults are what a channel without held-out people keeps."""

    cohort_strength: float = 1000.0  # events of population pattern added to each cohort's
    alpha_daily: float = 8.0  # events of prior added to a person's hour-of-day evidence
    alpha_weekly: float = 32.0  # ...to their hour-of-week evidence (infinite in the search: the prior alone)
    beta: float = 0.25  # share of the prior taken from the person's other channel
    blur: float = 0.15  # share of each hour given to each neighbour
    trigger_weight: float = 0.0  # a triggered send on this channel counts as this much engagement
    other_trigger_weight: float = 0.0  # ...a triggered send on the other channel
    rhythm_types: int = 0  # typical daily rhythms fitted (0: none; features/rhythms.py)
    rhythm_pooled: bool = False  # fitted on both channels' evidence
    rhythm_weight: float = 0.0  # share of the cohort prior replaced by the person's likely rhythm
    rhythm_temper: float = 1.0  # how far a person's own events are trusted to pick a rhythm
    rhythm_other: float = 0.0  # weight of the other channel's answers in picking the rhythm
    weekend_shift: int = 0  # hours later the same habits run at the weekend
    half_life_days: float = 90.0  # recency: a person's events reweighted by age (0: no decay)
    heldout_rows: int | None = None
    heldout_folds: int | None = None
    heldout_loglik_population: float | None = None
    heldout_loglik: float | None = None
    heldout_loglik_cohort: float | None = None

    @property
    def rhythm_key(self) -> tuple[int, bool]:
        """Which fitted rhythms these strengths use: (how many, pooled over channels)."""
        return int(self.rhythm_types), bool(self.rhythm_pooled)

    @property
    def uses_rhythms(self) -> bool:
        return self.rhythm_key[0] > 0 and self.rhythm_weight > 0

    def to_dict(self) -> dict[str, float]:
        """The stored form: strengths as floats, held-out counts as ints, unset diagnostics left out."""
        out: dict[str, float] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = int(value) if f.name in _COUNTS else float(value)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> ChannelStrengths:
        """The stored form back; names it lacks keep their defaults (older snapshots predate some)."""
        unknown = sorted(set(values) - set(NAMES))
        if unknown:
            raise ValueError(f"unknown shrinkage strengths {unknown} (expected some of {sorted(NAMES)})")
        return cls(**{name: _typed(name, value) for name, value in values.items()})

    def with_values(self, values: Mapping[str, float]) -> ChannelStrengths:
        """These strengths with some replaced, by name (as `profiles.shrinkage_overrides` gives them)."""
        return replace(self, **{name: _typed(name, value) for name, value in values.items()})


NAMES = tuple(f.name for f in fields(ChannelStrengths))
DEFAULT = ChannelStrengths()


def _typed(name: str, value: float):
    kind = {"rhythm_types": int, "weekend_shift": int, "rhythm_pooled": bool, **dict.fromkeys(_COUNTS, int)}
    if value is None:
        return None
    return kind.get(name, float)(value)


@dataclass(frozen=True)
class Shrinkage:
    """Both channels' strengths, looked up by channel name (`shrinkage[S.EMAIL]`) or number (`.of(c)`)."""

    email: ChannelStrengths = DEFAULT
    sms: ChannelStrengths = DEFAULT

    def __getitem__(self, channel: str) -> ChannelStrengths:
        if channel not in S.CHANNELS:
            raise KeyError(channel)
        return getattr(self, channel)

    def __iter__(self) -> Iterator[str]:
        return iter(S.CHANNELS)

    def of(self, c: int) -> ChannelStrengths:
        """Channel number c's strengths (the index of every per-channel array)."""
        return self[S.CHANNELS[c]]

    def items(self) -> Iterator[tuple[str, ChannelStrengths]]:
        return ((channel, self[channel]) for channel in S.CHANNELS)

    def with_channel(self, channel: str, strengths: ChannelStrengths) -> Shrinkage:
        return replace(self, **{channel: strengths})

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {channel: strengths.to_dict() for channel, strengths in self.items()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Mapping[str, float]]) -> Shrinkage:
        unknown = sorted(set(values) - set(S.CHANNELS))
        if unknown:
            raise ValueError(f"unknown shrinkage channels {unknown} (expected {list(S.CHANNELS)})")
        return cls(**{c: ChannelStrengths.from_dict(v) for c, v in values.items()})


assert tuple(f.name for f in fields(Shrinkage)) == S.CHANNELS, "one Shrinkage field per channel, in order"
