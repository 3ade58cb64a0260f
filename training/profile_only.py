"""The profile-only decision maker: what `sendtime train` registers when the data are too short to train
and honestly test a model (training/split_design.py says when).

No LightGBM: the profile snapshot itself decides. A person's profile already holds what the model would
mostly learn from: a click rate per send (shrunk toward their cohort) and a response curve over the 168
local hours of the week (exposure-corrected, shrunk toward their other channel, cohort and population
with strengths chosen on held-out data; mean 1 over the week). So

    P(click within the label horizon | sent at hour h) = click_rate x response[h]

which averages to the person's click rate over the week and ranks hours exactly as the profile does.
For "activity" exports (opens and clicks only, no sends) the label is "engages in that local hour of a
week", so the probability is 1 - exp(-engagements per week x response[h] / 168), counting at least one
engagement a week.

`ProfileOnlyModel` has the part of `lightgbm.Booster`'s interface that sendtime uses (`predict` on the
shared feature matrix of features/model_features.py, `feature_name`, `dump_model` with monotone constraints,
`model_to_string`, `feature_importance`, `num_trees`), so the predictor, the policy, the batch plan
(including its top-hours shortcut: the probability rises with the response, like the model's), the
API and `sendtime evaluate` use it unchanged. It is stateless: one instance serves every thread.
"""

from __future__ import annotations

import json

import numpy as np

from sendtime import schema as S
from sendtime.features.model_features import FEATURES, MONOTONE

PROFILE_ONLY = "profile_only"  # registry tag `model_kind` of such a version
LIGHTGBM = "lightgbm"  # registry tag `model_kind` of a trained model
MODEL_KIND_TAG = "model_kind"
_MARKER = "sendtime-profile-only-model\n"  # first line of `model_to_string` (LightGBM's is "tree")
_RATE_X_RESPONSE = FEATURES.index("rate_x_response")
_ENGAGEMENTS_PER_WEEK = FEATURES.index("engagements_per_week")
_RESPONSE = FEATURES.index("response")
P_MAX = 1.0 - 1e-6


class ProfileOnlyModel:
    """Probabilities from the profile's own click rate and response curve (see the module docstring).

    `kind`: the label kind of the data ("send_response" or "activity", training/examples.py).
    """

    best_iteration = 0

    def __init__(self, kind: str = "send_response") -> None:
        self.kind = kind

    def predict(self, X: np.ndarray, num_threads: int | None = None, **_: object) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.kind == "activity":
            # at least one a week: new contacts (no engagements) are still ranked by their cohort's curve
            per_week = np.maximum(np.nan_to_num(X[:, _ENGAGEMENTS_PER_WEEK], nan=0.0), 1.0)
            rate = per_week * X[:, _RESPONSE] / S.HOURS_PER_WEEK
            p = 1.0 - np.exp(-np.maximum(rate, 0.0))
        else:
            p = X[:, _RATE_X_RESPONSE]
        return np.clip(np.nan_to_num(p, nan=0.0), 0.0, P_MAX)

    def feature_name(self) -> list[str]:
        return list(FEATURES)

    def dump_model(self) -> dict:
        """What serving/top_hours.py reads: the probability never falls as an hour feature rises."""
        return {
            "name": PROFILE_ONLY,
            "feature_names": list(FEATURES),
            "monotone_constraints": [MONOTONE.get(f, 0) for f in FEATURES],
        }

    def model_to_string(self) -> str:
        return _MARKER + json.dumps({"kind": self.kind, "features": FEATURES})

    def feature_importance(self, importance_type: str = "gain") -> np.ndarray:
        """1 for the features the probability is computed from, 0 elsewhere."""
        used = (_ENGAGEMENTS_PER_WEEK, _RESPONSE) if self.kind == "activity" else (_RATE_X_RESPONSE,)
        out = np.zeros(len(FEATURES))
        out[list(used)] = 1.0
        return out

    def num_trees(self) -> int:
        return 0

    def current_iteration(self) -> int:
        return 0


def booster_from_string(text: str):
    """The model `model_to_string` wrote: a `ProfileOnlyModel`, else a LightGBM booster."""
    if text.startswith(_MARKER):
        spec = json.loads(text[len(_MARKER) :])
        if spec.get("features") != FEATURES:
            raise ValueError(
                f"a profile-only model of features {spec.get('features')} cannot score this sendtime's {FEATURES}"
            )
        return ProfileOnlyModel(spec["kind"])
    import lightgbm as lgb

    return lgb.Booster(model_str=text)


def is_profile_only(model: object) -> bool:
    return isinstance(model, ProfileOnlyModel)


def load_registered(model_uri: str) -> ProfileOnlyModel:
    """The registered profile-only version at `model_uri` (models:/name/version). Its model-from-code
    file (profile_only_pyfunc.py) brings the MLflow wrapper in when MLflow runs it."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model()
