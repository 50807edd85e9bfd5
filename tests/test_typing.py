"""The public API's types and docstrings are checked, as Gymnasium's and SB3's are.

mypy runs with pyproject.toml's ``[tool.mypy]`` settings over textgym/, agents/ and experiments/ (about 40 s of CPU
from a cold cache, a few seconds warm: the cache is ``.mypy_cache``); ruff runs with its ``D`` (Google docstring)
rules on the same packages. Both in a subprocess, as a developer would run them:

    .venv/bin/mypy
    .venv/bin/ruff check .
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_mypy_finds_no_type_errors() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout, result.stdout


def test_ruff_finds_no_lint_or_docstring_errors() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff found problems:\n{result.stdout}{result.stderr}"


def test_packages_ship_py_typed() -> None:
    # PEP 561: the marker tells type checkers in other projects to read TextGym's annotations.
    for package in ("textgym", "agents", "experiments"):
        assert (ROOT / package / "py.typed").is_file(), f"{package}/py.typed is missing"
