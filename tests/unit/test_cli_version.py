"""`sendtime --version` says the installed version, and the front doors stay cheap to start: `import
sendtime` and `sendtime --help` load none of the heavy libraries (each function imports its stage)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

import sendtime
from sendtime.cli import main

HEAVY = ("numpy", "pandas", "pydantic", "mlflow", "lightgbm", "bentoml", "sendtime.configs.settings")


def test_version_prints_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code in (0, None)
    assert capsys.readouterr().out == f"sendtime {version('sendtime')}\n"
    assert sendtime.__version__ == version("sendtime")


@pytest.mark.parametrize(
    "code",
    [
        "import sendtime",
        "import sys; from sendtime.cli import main; sys.argv = ['sendtime', '--help']; main()",
    ],
)
def test_import_sendtime_and_help_load_nothing_heavy(code):
    probe = f"{code}\n" if "main()" not in code else f"try:\n    {code}\nexcept SystemExit:\n    pass\n"
    probe += f"import sys\nprint('loaded:', [m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "loaded: []"
