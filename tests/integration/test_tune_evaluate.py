"""`sendtime tune` (resumable Optuna study, nested MLflow runs, a config train accepts) and `sendtime evaluate`."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from sendtime.configs.settings import Settings, load_settings
from sendtime.features.strengths import Shrinkage
from sendtime.workflows import tune


# ---------------------------------------------------------------------------------------- tuned config
def test_tuned_config_writes_only_changes_and_loads():
    settings = load_settings(overrides={"training": {"snapshots": 3, "num_boost_round": 200}})
    best = {
        **tune.starting_params(settings),
        "learning_rate": 0.1,
        "num_leaves": 15,
        "email_alpha_scale": 2.0,
        "sms_alpha_scale": 1.0,
    }
    shrinkage = Shrinkage.from_dict(
        {
            "email": {"alpha_daily": 8.0, "alpha_weekly": 32.0, "beta": 0.25},
            "sms": {"alpha_daily": 4.0, "alpha_weekly": 1e6, "beta": 0.5},
        }
    )
    content = tune.tuned_config(settings, best, best_iteration=40, base_shrinkage=shrinkage)

    assert set(content) == {"training", "profiles"}
    assert content["training"]["snapshots"] == 3  # the given settings' own departures from the defaults stay
    assert content["training"]["num_boost_round"] == 40 + settings.training.early_stopping_rounds
    assert content["profiles"] == {
        "shrinkage_overrides": {"email": {"alpha_daily": 16.0, "alpha_weekly": 64.0}}
    }
    # a fully pooled strength (1e6 stands for infinity) is left alone
    pooled = tune.tuned_config(settings, {**best, "sms_alpha_scale": 4.0}, 40, shrinkage)
    assert pooled["profiles"]["shrinkage_overrides"]["sms"] == {"alpha_daily": 16.0}
    loaded = Settings.model_validate(yaml.safe_load(yaml.safe_dump(content)))
    assert loaded.training.lgbm == {**settings.training.lgbm, "learning_rate": 0.1, "num_leaves": 15}
    assert loaded.training.label_hours == Settings().training.label_hours

    # a run that never early-stopped keeps the cap; an unchanged shrinkage writes no override
    plain = tune.tuned_config(settings, {**best, "email_alpha_scale": 1.0}, 200, shrinkage)
    assert plain["training"]["num_boost_round"] == 200
    assert "profiles" not in plain


# --------------------------------------------------------------------------------------------- tune
@pytest.mark.integration
def test_tune_resumes_its_study_and_writes_a_config_train_accepts(session_home, small_world, tmp_path):
    import mlflow
    import optuna

    from sendtime import home
    from sendtime.training import registry
    from sendtime.workflows.train import train

    base = tmp_path / "base.yaml"
    base.write_text("training:\n  snapshots: 3\n  num_boost_round: 60\n")
    settings = load_settings(base)
    out = tmp_path / "configs" / "tuned.yaml"
    lines: list[str] = []
    first = tune.tune(
        small_world,
        2,
        settings,
        config_path=str(base),
        out_config=out,
        study_name="resume-check",
        progress=False,
        echo=lines.append,
    )
    second = tune.tune(
        small_world,
        2,
        settings,
        config_path=str(base),
        out_config=out,
        study_name="resume-check",
        progress=False,
        echo=lines.append,
    )

    assert (first.trials, second.trials) == (2, 4)
    study = optuna.load_study(study_name="resume-check", storage=home.optuna_storage())
    assert len(study.trials) == 4
    # a new study starts from the given settings
    assert study.trials[0].params["learning_rate"] == settings.training.lgbm["learning_rate"]
    # the best trial is chosen as the gate judges: by the decision measure (capture: the world has ground
    # truth), then log loss among the trials within the tolerance of the best measure
    tolerance = settings.training.gate_decision_tolerance
    assert first.decision_name == "capture" and first.best_decision is not None
    assert second.best_decision >= first.best_decision - tolerance
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    top = max(t.user_attrs["capture"] for t in done)
    near = [t for t in done if t.user_attrs["capture"] >= top - tolerance]
    assert second.best_trial == min(near, key=lambda t: t.value).number
    assert second.best_value == pytest.approx(study.trials[second.best_trial].value)
    assert any(line.startswith("trial 3:") for line in lines)
    assert lines[-1].endswith(f"wrote {out}")

    registry.configure_mlflow(settings.training.experiment)
    trials = mlflow.search_runs(
        experiment_names=[settings.training.experiment],
        output_format="list",
        filter_string="tags.`sendtime.command` = 'tune-trial' and tags.study = 'resume-check'",
    )
    assert len(trials) == 4
    parents = {t.data.tags["mlflow.parentRunId"] for t in trials}
    assert parents == {first.run_id, second.run_id}
    for run in trials:
        if run.data.tags["state"] == "complete":
            assert {"validation_log_loss", "best_iteration"} <= set(run.data.metrics)
        assert "lgbm_learning_rate" in run.data.params and "email_alpha_scale" in run.data.params

    # a study is tied to its data: another folder is refused before any trial runs
    other = tmp_path / "other-world"
    shutil.copytree(small_world, other)
    pd.read_parquet(other / "events.parquet").iloc[:-1].to_parquet(other / "events.parquet", index=False)
    with pytest.raises(ValueError, match="other data"):
        tune.tune(
            other, 1, settings, out_config=out, study_name="resume-check", progress=False, echo=lines.append
        )
    assert len(optuna.load_study(study_name="resume-check", storage=home.optuna_storage()).trials) == 4

    tuned = load_settings(out)
    assert tuned.training.snapshots == 3
    assert tuned.training.lgbm["objective"] == "binary"
    for key in tune.LGBM_SPACE:
        assert tuned.training.lgbm[key] == second.best_params[key]
    # `sendtime train --config tuned.yaml` (under another model name, so the session's champion stays put)
    checked = load_settings(out, overrides={"training": {"registered_model": "sendtime-tuned-check"}})
    result = train(small_world, checked, config_path=str(out), progress=False, echo=lambda *_: None)
    assert result.version == "1"
    params = registry.client().get_run(result.run_id).data.params
    assert params["lgbm_learning_rate"] == str(tuned.training.lgbm["learning_rate"])


# ----------------------------------------------------------------------------------------- evaluate
@pytest.mark.integration
def test_evaluate_reproduces_the_champions_training_metrics(trained_champion, small_world, test_settings):
    from sendtime.training import registry
    from sendtime.workflows.evaluate import evaluate

    lines: list[str] = []
    result = evaluate(small_world, test_settings, progress=False, echo=lines.append)

    assert result.version == trained_champion.version
    assert result.model_run_id == trained_champion.run_id
    assert result.same_data is True
    for key in ("log_loss", "auc"):
        assert abs(result.metrics[key] - trained_champion.metrics[key]) < 1e-6, key
    for key, value in trained_champion.metrics.items():  # baselines and capture too
        assert result.metrics[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key

    run = registry.client().get_run(result.run_id)
    assert run.data.tags["evaluate"] == "true"
    assert run.data.tags["model_version"] == trained_champion.version
    assert run.data.metrics["log_loss"] == pytest.approx(result.metrics["log_loss"])
    logged = {a.path for a in registry.client().list_artifacts(result.run_id, "plots")}
    assert {"plots/calibration.png", "plots/feature_importance.png", "plots/hour_of_week.png"} <= logged
    table = "\n".join(lines)
    assert "same data as the training run: yes" in table
    assert any(line.startswith("model ") for line in lines)
    assert any(line.startswith("smoothed_histogram ") for line in lines)


@pytest.mark.integration
def test_evaluate_names_a_missing_version(trained_champion, small_world, test_settings, capsys):
    from sendtime import cli

    code = cli.main(["evaluate", "--data", str(small_world), "--version", "999"])
    assert code == 2
    assert "no version 999" in capsys.readouterr().err
