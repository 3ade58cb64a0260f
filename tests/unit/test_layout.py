"""The tree shows the flow: each stage's code in its top-level folder, mapped onto the `sendtime` package.

pyproject.toml lists the packages by hand (setuptools cannot discover a package-dir mapping), so a new
sub-package folder that is not listed would be missing from the wheel and the Bento while every test
that runs from the checkout still passes. These checks catch that, and keep bentofile.yaml's wheel name in
step with the project's version.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folder(package: str, mapping: dict[str, str]) -> Path:
    """Where setuptools looks for `package`: its own mapping, else its parent's folder plus its last name."""
    if package in mapping:
        return ROOT / mapping[package]
    parent, _, name = package.rpartition(".")
    return _package_folder(parent, mapping) / name


def test_every_package_folder_is_listed_and_every_listed_package_exists():
    setuptools = _pyproject()["tool"]["setuptools"]
    listed, mapping = set(setuptools["packages"]), setuptools["package-dir"]
    roots = {_package_folder(p, mapping) for p in mapping}
    found = set()
    for root in roots:
        for init in root.rglob("__init__.py"):
            folder = init.parent
            if "__pycache__" in folder.parts:
                continue
            found.add(folder)
    listed_folders = {_package_folder(p, mapping): p for p in listed}
    missing = sorted(str(f.relative_to(ROOT)) for f in found - set(listed_folders))
    assert not missing, f"folders with an __init__.py that pyproject.toml's packages do not list: {missing}"
    absent = sorted(p for f, p in listed_folders.items() if not (f / "__init__.py").is_file())
    assert not absent, f"packages listed in pyproject.toml without an __init__.py: {absent}"


def test_the_stages_live_at_the_top_level():
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    for stage in ("features", "training", "serving", "experiments", "configs"):
        assert mapping[f"sendtime.{stage}"] == stage
        assert (ROOT / stage / "__init__.py").is_file()


def test_the_bento_installs_this_versions_wheel():
    version = _pyproject()["project"]["version"]
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert bentofile["python"]["wheels"] == [f"dist/sendtime-{version}-py3-none-any.whl"]


def _pins(lock: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / lock).read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def test_the_bento_gets_the_runtime_pins_only_and_they_agree_with_what_ci_tests():
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert bentofile["python"]["requirements_txt"] == "requirements-runtime.lock"
    runtime, dev = _pins("requirements-runtime.lock"), _pins("requirements.lock")
    assert not {"pytest", "ruff", "uv", "pyspark", "pytest-timeout"} & set(runtime)
    differ = {name: (v, dev.get(name)) for name, v in runtime.items() if dev.get(name) != v}
    assert not differ, f"runtime pins that differ from requirements.lock (run `make lock`): {differ}"
    for name in ("lightgbm", "mlflow", "bentoml", "pandas", "phonenumbers"):
        assert name in runtime
