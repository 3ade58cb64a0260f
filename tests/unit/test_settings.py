"""Settings: the shipped default.yaml matches the code, partial files override only their keys, mistakes
fail with a message naming them, and importing sendtime has no side effects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sendtime.configs.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_YAML = REPO / "configs" / "default.yaml"


def write_yaml(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ (or exist on one side only)."""
    out = []
    for key in sorted(set(a) | set(b)):
        name = f"{prefix}{key}"
        if key not in a or key not in b:
            out.append(f"{name} ({'only in default.yaml' if key in a else 'only in Settings()'})")
        elif isinstance(a[key], dict) and isinstance(b[key], dict):
            out += _diff(a[key], b[key], f"{name}.")
        elif a[key] != b[key]:
            out.append(f"{name}: default.yaml {a[key]!r} != Settings() {b[key]!r}")
    return out


def test_default_yaml_equals_the_code_defaults():
    shipped = yaml.safe_load(DEFAULT_YAML.read_text())
    assert _diff(shipped, Settings().model_dump(mode="json")) == []
    assert load_settings(DEFAULT_YAML) == Settings()


def test_no_config_means_the_defaults():
    assert load_settings() == Settings()
    assert load_settings(None, overrides={}) == Settings()


def test_empty_yaml_means_the_defaults(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing changed\n")
    assert load_settings(tmp_path / "empty.yaml") == Settings()


def test_partial_yaml_overrides_only_its_keys(tmp_path):
    path = write_yaml(
        tmp_path / "partial.yaml",
        {
            "signals": {"attribution_hours": 48},
            "policy": {"quiet_hours": {"end": 20}},
            "data": {"bad_share_limit": 0.05},
        },
    )
    got = load_settings(path).model_dump()
    expected = Settings().model_dump()
    expected["signals"]["attribution_hours"] = 48.0
    expected["policy"]["quiet_hours"]["end"] = 20
    expected["data"]["bad_share_limit"] = 0.05
    assert got == expected
    assert got["policy"]["quiet_hours"]["start"] == 8  # the sibling of an overridden nested key stays


def test_overrides_merge_on_top_of_the_file(tmp_path):
    path = write_yaml(tmp_path / "a.yaml", {"training": {"snapshots": 2, "num_boost_round": 50}})
    got = load_settings(path, overrides={"training": {"num_boost_round": 10}})
    assert got.training.snapshots == 2 and got.training.num_boost_round == 10
    assert got.training.lgbm == Settings().training.lgbm


@pytest.mark.parametrize(
    ("data", "name"),
    [
        ({"signals": {"atribution_hours": 48}}, "atribution_hours"),
        ({"signal": {"attribution_hours": 48}}, "signal"),
        ({"policy": {"quiet_hours": {"finish": 20}}}, "finish"),
    ],
)
def test_unknown_key_fails_naming_it(tmp_path, data, name):
    path = write_yaml(tmp_path / "typo.yaml", data)
    with pytest.raises(ValueError) as err:
        load_settings(path)
    assert name in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_value_fails_naming_the_key(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", {"data": {"bad_share_limit": 2}})
    with pytest.raises(ValueError, match="bad_share_limit"):
        load_settings(path)


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- data\n- signals\n")
    with pytest.raises(ValueError, match="mapping"):
        load_settings(path)


def test_missing_config_file_fails_clearly(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError) as err:
        load_settings(missing)
    assert str(missing) in str(err.value) and "does not exist" in str(err.value)


IMPORT_PROBE = """
import json, logging, os, sys
import sendtime, sendtime.cli, sendtime.configs, sendtime.features, sendtime.features.load
import sendtime.workflows.train, sendtime.serving.predictor
uri_set = False
if "mlflow" in sys.modules:
    from mlflow.tracking._tracking_service import utils
    uri_set = utils.is_tracking_uri_set()
print(json.dumps({
    "uri_env": os.environ.get("MLFLOW_TRACKING_URI"),
    "uri_set": uri_set,
    "root_handlers": len(logging.getLogger().handlers),
    "cwd": sorted(os.listdir(".")),
}))
"""


def test_import_has_no_side_effects(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SENDTIME_HOME", "MLFLOW_TRACKING_URI")}
    env["HOME"] = str(tmp_path / "home")  # third-party caches, if any, land here and not in cwd
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"uri_env": None, "uri_set": False, "root_handlers": 0, "cwd": []}
    assert list(cwd.iterdir()) == []
