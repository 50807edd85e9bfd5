"""Preflight: before any episode, an OpenAI-compatible endpoint must answer; a dead one fails in a second with one
clear line. Also through experiments.running.llm_session with the real ``conf/llm/server.yaml``."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from agents.llm.client import LLMClient, LLMUnavailableError
from agents.llm.transport import HTTPTransport
from experiments.running.llm_session import llm_session
from tests.fake_llm_server import FakeLLMServer

CONF_LLM = Path(__file__).resolve().parents[2] / "conf" / "llm"


def _dead_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def test_no_server_fails_at_once_with_one_line() -> None:
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    started = time.perf_counter()
    with pytest.raises(LLMUnavailableError) as raised:
        LLMClient("m", HTTPTransport(url, None)).preflight()
    assert str(raised.value) == f"no OpenAI-compatible server at {url} (connection refused); start one or use llm=local"
    assert time.perf_counter() - started < 3  # no retries, no backoff


def test_a_server_that_never_answers_times_out(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}/v1"
    with pytest.raises(LLMUnavailableError, match=r"^no OpenAI-compatible server at .* \(no answer within 0.3 s\); "
                                                  "start one or use llm=local$"):
        LLMClient("m", HTTPTransport(url, None)).preflight(timeout_s=0.3)


def test_a_url_without_scheme_is_named() -> None:
    with pytest.raises(LLMUnavailableError, match="missing an 'http://' or 'https://' protocol"):
        LLMClient("m", HTTPTransport("127.0.0.1:9/v1", None)).preflight()


def test_a_listening_server_passes_and_unlisted_models_get_a_warning(fake_llm: FakeLLMServer, caplog) -> None:
    LLMClient("scripted", HTTPTransport(fake_llm.base_url, None)).preflight()
    assert fake_llm.model_listings == 1 and not caplog.records
    with caplog.at_level(logging.WARNING):
        LLMClient("llama-9000", HTTPTransport(fake_llm.base_url, None)).preflight()
    assert "does not list model 'llama-9000' (it lists scripted)" in caplog.text
    assert fake_llm.requests == []  # preflight costs no completion


@pytest.mark.parametrize("status", [404, 503])
def test_servers_without_a_model_list_still_pass(fake_llm: FakeLLMServer, status: int) -> None:
    fake_llm.models_status = status
    LLMClient("scripted", HTTPTransport(fake_llm.base_url, None)).preflight()
    assert fake_llm.model_listings == 1


def test_a_refused_key_names_the_variable_never_the_key(fake_llm: FakeLLMServer, monkeypatch) -> None:
    monkeypatch.setenv("TEXTGYM_PREFLIGHT_KEY", "sk-wrong-key-0000")
    fake_llm.api_key = "sk-right-key-1111"
    with pytest.raises(LLMUnavailableError, match=r"refused the API key \(HTTP 401: .*\); check the key in "
                                                  r"\$TEXTGYM_PREFLIGHT_KEY$") as raised:
        LLMClient("scripted", HTTPTransport(fake_llm.base_url, "TEXTGYM_PREFLIGHT_KEY")).preflight()
    assert "sk-wrong-key-0000" not in str(raised.value)  # the fake server repeats it; we do not
    monkeypatch.setenv("TEXTGYM_PREFLIGHT_KEY", "sk-right-key-1111")
    LLMClient("scripted", HTTPTransport(fake_llm.base_url, "TEXTGYM_PREFLIGHT_KEY")).preflight()


def _server_cfg(base_url: str, tmp_path: Path, **extra) -> DictConfig:
    cfg = OmegaConf.load(CONF_LLM / "server.yaml")
    cfg.merge_with({"model": "scripted", "base_url": base_url, "cache_path": str(tmp_path / "cache.sqlite"),
                    **extra})
    return cfg


def test_llm_session_checks_the_server_before_yielding(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    with pytest.raises(LLMUnavailableError, match="connection refused"), llm_session(_server_cfg(url, tmp_path), 2):
        pytest.fail("no client should be yielded")
    with llm_session(_server_cfg(url, tmp_path, preflight=False), 2) as client:  # opted out
        assert client.base_url == url


def test_llm_session_passes_backoff_settings_to_a_live_server(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    with llm_session(_server_cfg(fake_llm.base_url, tmp_path, backoff_s=0.01, max_backoff_s=0.1,
                                 max_retry_after_s=5), 4) as client:
        assert (client.retry.backoff_s, client.retry.max_backoff_s, client.retry.max_retry_after_s) == (0.01, 0.1, 5)
        assert client.max_concurrency == 4
    assert fake_llm.model_listings == 1


@pytest.mark.parametrize(("extra", "says"), [
    ({"_target_": "no_such_package.Backend"}, "cannot build llm._target_=no_such_package.Backend: "),
    ({"colour": "blue"}, "cannot build llm._target_=agents.llm.backends.openai_compatible: "
                         ".*unexpected keyword argument 'colour'"),
    ({"model": "???"}, r"llm.model must be set \(e.g. llm.model=...\)"),
    ({"cache": "sometimes"}, "unknown llm.cache 'sometimes': expected one of off, read, readwrite"),
])
def test_llm_session_config_errors_are_one_line_value_errors(extra: dict, says: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        with llm_session(_server_cfg("http://127.0.0.1:9/v1", tmp_path, **extra), 1):
            pytest.fail("no client should be yielded")
    assert "\n" not in str(raised.value)


def test_custom_backend_without_a_target_is_named() -> None:
    with pytest.raises(ValueError, match=r"^llm._target_ is not set: name the backend class, e.g. llm._target_="):
        with llm_session(OmegaConf.load(CONF_LLM / "custom.yaml"), 1):
            pass


def test_a_dead_server_is_reported_before_any_price_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 24 item 10: "no price for model" came first, then the real error; now start-up fails alone."""
    url = f"http://127.0.0.1:{_dead_port()}/v1"
    with caplog.at_level(logging.WARNING), pytest.raises(LLMUnavailableError, match="connection refused"):
        with llm_session(_server_cfg(url, tmp_path, model="unpriced-model"), 1):
            pass
    assert "no price" not in caplog.text
    with caplog.at_level(logging.WARNING), llm_session(_server_cfg(url, tmp_path, model="unpriced-model",
                                                                   preflight=False), 1):
        pass  # the warning still comes when the model does start
    assert "no price for model 'unpriced-model'" in caplog.text
