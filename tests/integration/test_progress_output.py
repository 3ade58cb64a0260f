"""Progress bars only on a terminal: piped into a log file or CI, a command's output holds no
carriage-return frames of a progress bar, only its result lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SENDTIME = Path(sys.executable).with_name("sendtime")


def test_piped_output_has_no_progress_frames(tmp_path):
    done = subprocess.run(
        [str(SENDTIME), "simulate", "--out", str(tmp_path / "world"), "--subscribers", "60", "--days", "14"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout and "\r" not in done.stderr, done.stderr[-500:]
    assert "it/s" not in done.stderr  # no tqdm frame, even a final one
    assert done.stdout.strip()  # the summary is still printed
