"""The code style gate (ruff) and the type gate (mypy), run as part of the suite so CI runs them."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_ruff_is_clean():
    out = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:]


@pytest.mark.slow
def test_mypy_is_clean():
    out = subprocess.run([str(BIN / "mypy"), "fi_spark"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:]
