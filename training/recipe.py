"""What a version was made from: the data it saw and the recipe its features were built with.

Training writes these into its MLflow run and the version's tags; the gate, `sendtime evaluate` and
`sendtime tune` read them back to judge a version on its own terms (the same features it was trained
with, the same data or not). Kept apart from the workflows that use them so that each reads them from
below rather than from one another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sendtime import schema as S
from sendtime.configs.settings import Settings
from sendtime.features.load import DataFolder
from sendtime.features.prepare import FeatureBase
from sendtime.features.strengths import Shrinkage

DATA_KIND_TAG = "data_kind"  # send_response or activity: what the version's labels were made of
CHANNELS_TAG = "channel_events"  # usable events per channel in the version's training data (JSON)


@dataclass(frozen=True)
class RunInputs:
    """What one training run is made from: the run logs each (the folder, the config) as its provenance."""

    data_dir: str  # the data folder, resolved
    data: DataFolder
    base: FeatureBase
    settings: Settings
    config_path: str | None = None


def fingerprint(data: DataFolder) -> dict:
    ev = data.events
    digest = hashlib.sha256()
    digest.update(
        pd.util.hash_pandas_object(ev[[S.TIMESTAMP, S.EVENT_TYPE]], index=False).to_numpy().tobytes()
    )
    return {
        "events": len(ev),
        "rejected": len(data.rejects),
        "first_event": str(ev[S.TIMESTAMP].min()),
        "last_event": str(ev[S.TIMESTAMP].max()),
        "sha256": digest.hexdigest()[:16],
        "subscribers_table": 0 if data.subscribers is None else len(data.subscribers),
        "identity_links": 0 if data.links is None else len(data.links),
    }


def channel_events(base: FeatureBase) -> dict[str, int]:
    """Usable sends and human engagements per channel: what a model of this data learnt each channel from."""
    counts = {c: 0 for c in S.CHANNELS}
    for table in (base.sends, base.engagements):
        for code, n in table["channel"].value_counts().items():
            counts[S.CHANNELS[int(code)]] += int(n)
    return counts


def reject_share(data: DataFolder) -> float:
    """Share of the export's event rows that no model saw: rejected when loaded, or with an address that
    could not be normalised (`unusable.add_address_rejects` lists those in `data.rejects` too)."""
    rejected = 0 if data.rejects.empty else int((data.rejects["table"] == S.EVENTS_TABLE).sum())
    return rejected / max(int(data.raw_rows.get(S.EVENTS_TABLE, len(data.events))), 1)


def version_kind(tags: dict) -> str | None:
    return tags.get(DATA_KIND_TAG) or tags.get("kind")


def training_context(run_id: str, settings: Settings, echo) -> tuple[Settings, Shrinkage | None, dict]:
    """The settings and shrinkage the version was trained with (falls back to `settings`, chosen
    shrinkage), and its run's data.json."""
    import mlflow

    from sendtime.training.registry import run_artifact_uri

    try:
        trained = Settings.model_validate(mlflow.artifacts.load_dict(run_artifact_uri(run_id, "config.json")))
    except Exception as exc:  # an old run whose config no longer validates: say so, carry on with ours
        echo(f"warning: could not use the training run's config.json ({exc}); using the given settings")
        trained = settings
    try:
        logged = mlflow.artifacts.load_dict(run_artifact_uri(run_id, "data.json"))
    except Exception as exc:
        echo(f"warning: the training run has no data.json ({exc}); choosing the shrinkage again")
        logged = {}
    shrinkage = logged.get("shrinkage")
    return trained, Shrinkage.from_dict(shrinkage) if shrinkage else None, logged


def log_provenance(data_dir: str, sha256: str) -> None:
    """The active run's inputs as MLflow shows them: the export folder as a dataset whose digest is the
    data's fingerprint (two runs on the same data show the same dataset in the UI), and the commit of the
    code that made the run (MLflow sets its own git tag only for scripts inside a repository, and the
    `sendtime` command is not one)."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # a local path matches MLflow's "" and "file" schemes: the same class
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        source = resolve_dataset_source(str(data_dir))
    mlflow.log_input(MetaDataset(source, name=Path(data_dir).name, digest=sha256), context="training")
    mlflow.set_tags({"git_commit": code_commit()})


def code_commit() -> str:
    """The git commit of this sendtime's source, with "+dirty" when it has uncommitted changes; "" when
    it is not a checkout (an installed wheel)."""
    import subprocess

    where = Path(__file__).resolve().parent  # this module's folder: inside the checkout, or the install
    try:
        head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)  # fmt: skip
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
