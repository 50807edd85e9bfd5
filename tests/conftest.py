"""Shared fixtures: the scripted fake LLM server, the embedded llama.cpp server, isolated caches."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fake_llm_server import FakeLLMServer


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
