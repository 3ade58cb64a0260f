"""A SENDTIME_HOME copied or mounted elsewhere: the absolute artifact paths our own MLflow store recorded
are re-rooted under the current home when the recorded one is gone, and only then."""

from __future__ import annotations

from sendtime.training.registry import relocated

MODEL = ("mlruns", "models", "m-abc", "artifacts")


def test_a_recorded_path_that_is_gone_is_found_under_the_current_home(tmp_path, monkeypatch):
    home = tmp_path / "new" / "home"
    (home.joinpath(*MODEL)).mkdir(parents=True)
    monkeypatch.setenv("SENDTIME_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    old = tmp_path / "old" / "home"
    assert relocated(old.joinpath(*MODEL).as_uri()) == home.joinpath(*MODEL).as_uri()
    assert relocated(str(old.joinpath(*MODEL))) == home.joinpath(*MODEL).as_uri()  # a bare path too
    run = ("mlruns", "1", "0123abcd", "artifacts", "profiles")
    home.joinpath(*run).mkdir(parents=True)
    assert relocated(old.joinpath(*run).as_uri()) == home.joinpath(*run).as_uri()


def test_paths_that_serve_as_they_are_stay(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.joinpath(*MODEL).mkdir(parents=True)
    monkeypatch.setenv("SENDTIME_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert relocated(home.joinpath(*MODEL).as_uri()) is None  # still there
    assert relocated((tmp_path / "gone" / "mlruns" / "models" / "m-xyz").as_uri()) is None  # nowhere
    assert relocated((tmp_path / "gone" / "elsewhere").as_uri()) is None  # not under an mlruns
    assert relocated("mlflow-artifacts:/1/models/m-abc/artifacts") is None  # a server's own scheme
    assert relocated("s3://bucket/mlruns/models/m-abc/artifacts") is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert relocated((tmp_path / "old" / "home").joinpath(*MODEL).as_uri()) is None  # its server decides
