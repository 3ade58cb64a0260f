"""The CLI's logging set-up: the level from --log-level, -v or SENDTIME_LOG_LEVEL, sendtime's loggers
only (other libraries stay at WARNING), and a clear error for an unknown level."""

from __future__ import annotations

import logging

import pytest

from sendtime import cli, logsetup


@pytest.fixture
def restore_logging():
    root, own = logging.getLogger(), logging.getLogger("sendtime")
    saved = root.level, own.level, list(root.handlers)
    yield
    root.setLevel(saved[0])
    own.setLevel(saved[1])
    root.handlers[:] = saved[2]


def test_info_is_for_sendtime_only_and_a_second_setup_replaces_the_first(restore_logging):
    logsetup.setup_logging("INFO")
    logsetup.setup_logging("INFO")
    ours = [h for h in logging.getLogger().handlers if isinstance(h, logsetup.StderrHandler)]
    assert len(ours) == 1
    assert logging.getLogger("sendtime.features.load").isEnabledFor(logging.INFO)
    assert not logging.getLogger("mlflow.store").isEnabledFor(logging.INFO)
    logsetup.setup_logging("WARNING")
    assert not logging.getLogger("sendtime.features.load").isEnabledFor(logging.INFO)


def test_log_level_option_before_or_after_the_command():
    parser = cli.build_parser()
    assert parser.parse_args(["--log-level", "info", "predict"]).log_level == "INFO"
    assert parser.parse_args(["predict", "--log-level", "debug"]).log_level == "DEBUG"
    assert not hasattr(parser.parse_args(["predict"]), "log_level")


def test_unknown_level_in_the_environment_is_a_usage_error(monkeypatch, capsys, restore_logging):
    monkeypatch.setenv(logsetup.LOG_LEVEL_ENV, "chatty")
    with pytest.raises(SystemExit) as stop:
        cli.main(["predict", "--request", "nowhere.json"])
    assert stop.value.code == 2
    assert "SENDTIME_LOG_LEVEL='CHATTY'" in capsys.readouterr().err
