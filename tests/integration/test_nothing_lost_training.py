"""`train` on an export with what real ones hold (issue 11, point 5): a send dated years ahead, unusable
addresses, the built-in salt. It trains, says what it rejected and why, logs it in rejects.csv, and warns
about the salt; with 30% unusable addresses it stops instead of training and promoting in silence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from sendtime import schema as S
from sendtime.features.load import AFTER_END_REASON
from sendtime.features.tables import DataError
from sendtime.features.unusable import EMAIL_REASON, PHONE_REASON

pytestmark = pytest.mark.integration


def _real_looking_copy(world: Path, out: Path) -> pd.DataFrame:
    """The simulated export without its ground truth (so nothing marks it as a simulation)."""
    shutil.copytree(world, out, ignore=shutil.ignore_patterns(S.GROUND_TRUTH_DIR))
    return pd.read_parquet(out / "events.parquet")


def test_one_future_send_and_some_unusable_addresses_train_and_are_reported(
    small_world, test_settings, tmp_path, monkeypatch
):
    import mlflow

    from sendtime.training import registry
    from sendtime.workflows.train import train

    monkeypatch.setenv("SENDTIME_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SENDTIME_SALT", raising=False)
    data = tmp_path / "export"
    events = _real_looking_copy(small_world, data)
    future = (
        events[events[S.EVENT_TYPE] == S.SEND].iloc[[7]].assign(timestamp=pd.Timestamp("2031-01-15T10:00Z"))
    )
    events = pd.concat([events, future], ignore_index=True)  # the last row: row len(events)
    email_rows = events.index[events[S.CHANNEL] == S.EMAIL][:40:4]  # 10 e-mail rows, 10 sms rows
    sms_rows = events.index[events[S.CHANNEL] == S.SMS][:40:4]
    events[S.ADDRESS] = events[S.ADDRESS].astype(object)
    events.loc[email_rows, S.ADDRESS] = "someone at example dot com"
    events.loc[sms_rows, S.ADDRESS] = "12"
    events.to_parquet(data / "events.parquet", index=False)

    said: list[str] = []
    result = train(data, test_settings, progress=False, echo=lambda *a: said.append(" ".join(map(str, a))))
    text = "\n".join(said)
    assert f"rejected events: {AFTER_END_REASON}: 1" in text
    assert f"rejected events: {EMAIL_REASON}: 10" in text and f"rejected events: {PHONE_REASON}: 10" in text
    assert "WARNING: address hashes use sendtime's built-in default salt" in text and "SENDTIME_SALT" in text

    registry.configure_mlflow(test_settings.training.experiment)
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=result.run_id, artifact_path="rejects.csv", dst_path=str(tmp_path)
        )
    )
    rejects = pd.read_csv(local)
    by_reason = {r: sorted(g["row"]) for r, g in rejects.groupby("reason")}
    assert by_reason[AFTER_END_REASON] == [len(events)]
    assert by_reason[EMAIL_REASON] == sorted(email_rows + 1) and by_reason[PHONE_REASON] == sorted(
        sms_rows + 1
    )
    assert set(rejects["file"]) == {"events.parquet"}
    assert registry.client().get_run(result.run_id).data.tags["salt"] == "built-in default"


def test_thirty_percent_unusable_addresses_stop_training(small_world, test_settings, tmp_path, monkeypatch):
    from sendtime.workflows.train import train

    monkeypatch.setenv("SENDTIME_HOME", str(tmp_path / "home"))
    data = tmp_path / "export"
    events = _real_looking_copy(small_world, data)
    broken = events.sample(frac=0.3, random_state=0).index
    events[S.ADDRESS] = events[S.ADDRESS].astype(object)
    events.loc[broken, S.ADDRESS] = "n/a"
    events.to_parquet(data / "events.parquet", index=False)
    with pytest.raises(DataError, match=r"\(30\.0%\) cannot be used, more than data\.bad_share_limit=20%"):
        train(data, test_settings, progress=False, echo=lambda *_: None)
    assert not (tmp_path / "home").exists()  # stopped before any state was created
