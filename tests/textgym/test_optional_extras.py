"""Without MuJoCo or ALE the classic ten still work, and asking for an env that needs a missing extra names it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from textgym.registration import ENVS, EXTRAS

# A fresh interpreter in which the extras' modules cannot be imported, as if they were not installed.
WITHOUT_EXTRAS = textwrap.dedent("""
    import sys
    for module in {modules!r}:
        sys.modules[module] = None  # import fails, find_spec finds nothing
    import gymnasium as gym
    import textgym
    from textgym.registration import MissingExtraError

    env = gym.make("TextGym-CartPole-v0", level=5)
    obs, info = env.reset(seed=0)
    env.step("push left")
    assert all(entry.text_id in gym.registry for entry in textgym.ENVS.values())
    for name in {names!r}:
        try:
            gym.make(textgym.ENVS[name].text_id)
        except MissingExtraError as error:
            print(name, "|", error)
        else:
            raise AssertionError(name + " was made without its extra")
""")


@pytest.mark.parametrize("extra", sorted({entry.extra for entry in ENVS.values() if entry.extra}))
def test_missing_extra_is_named_and_classic_envs_still_work(extra: str) -> None:
    names = [name for name, entry in ENVS.items() if entry.extra == extra]
    code = WITHOUT_EXTRAS.format(modules=[EXTRAS[extra][0]], names=names)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(" | ")[0] for line in lines] == names
    for line, name in zip(lines, names, strict=True):
        assert f'{ENVS[name].text_id} needs' in line and f'pip install "textgym[{extra}]"' in line, line


def test_every_extra_is_declared_in_pyproject() -> None:
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    assert {entry.extra for entry in ENVS.values() if entry.extra} <= set(project["optional-dependencies"])
