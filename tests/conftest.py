"""Shared fixtures (the scripted fake LLM server, the embedded llama.cpp server, isolated caches) and the guard
that skips, by name, the tests of envs whose optional extra is missing.

Without an optional extra (``textgym[mujoco]``, ``textgym[atari]``) every test parametrized with an env that needs
it (by config name or text id) is skipped with the extra named, in every test folder (the runner's PPO and eval
tests too). The classic ten need no extra, so the suite still runs them where MuJoCo or ALE is missing;
scripts/setup.sh and CI install both extras, so nothing is skipped there. tests/textgym/test_optional_extras.py
checks that asking for such an env names the extra.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fake_llm_server import FakeLLMServer
from textgym.registration import ENVS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lacking = {key: entry for entry in ENVS.values() if entry.missing_extra()
               for key in (entry.name, entry.text_id)}
    if not lacking:
        return
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if isinstance(value, str) and value in lacking:
                extra = lacking[value].extra
                item.add_marker(pytest.mark.skip(reason=f'{value} needs the {extra} extra, which is not installed: '
                                                        f'pip install "textgym[{extra}]"'))
                break


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Few-shot rollouts are cheap to rebuild; a shared session folder keeps the suite fast and hermetic.
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path_factory.getbasetemp() / "textgym-cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="session")
def embedded_llm():
    """The real embedded SmolLM2 server, started once per test session."""
    from agents.llm.embedded import EmbeddedServer

    server = EmbeddedServer(parallel=2, threads=os.cpu_count())
    server.start()
    yield server
    server.stop()
