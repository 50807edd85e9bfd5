"""Each integration whose extra is missing says, in one line, which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [("gem", "gem", "gem"), ("verifiers", "verifiers", "verifiers"), ("openenv", "openenv", "openenv"),
         ("trl", "trl", "trl")]


@pytest.mark.parametrize(("module", "peer", "extra"), CASES, ids=[case[0] for case in CASES])
def test_missing_extra_is_named_in_one_line(module: str, peer: str, extra: str) -> None:
    # None in sys.modules makes Python's own import of the peer fail, as it does where it is not installed.
    code = (f"import sys; sys.modules[{peer!r}] = None\n"
            f"try:\n    import textgym.integrations.{module}\n"
            f"except Exception as error:\n    print(type(error).__name__, error)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("MissingExtraError") and "\n" not in line
    assert f'pip install "textgym[{extra}]"' in line
