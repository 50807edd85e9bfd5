"""Cached prompt tokens as the real embedded llama.cpp server (xllamacpp, what ``llm=local`` runs) reports them, and
slot pinning as ``experiments.running.llm_session`` sets it up from the real ``conf/llm`` files."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from agents.llm.client import LLMClient, Sampling
from agents.llm.transport import HTTPTransport
from experiments.running.llm_session import llm_session
from tests.fake_llm_server import FakeLLMServer

SYSTEM = "You are playing CartPole. Push the cart left or right to keep the pole upright. " * 6
REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_LLM = REPO_ROOT / "conf" / "llm"


def test_second_request_with_the_same_prefix_reports_cached_prompt_tokens(embedded_llm) -> None:
    client = LLMClient(embedded_llm.model_name, HTTPTransport(embedded_llm.base_url, None, max_concurrency=1),
                       sampling=Sampling(max_tokens=4))

    async def two_steps():
        try:
            return [await client.complete([{"role": "system", "content": SYSTEM},
                                           {"role": "user", "content": f"Step {step}. Which way?"}],
                                          purpose="action") for step in (1, 2)]
        finally:
            await client.aclose()

    first, second = asyncio.run(two_steps())
    usage = second.records[0]["usage"]
    assert isinstance(usage["cached_prompt_tokens"], int)
    # Only the user turn changed: the server re-read a few tokens and served the long system prompt from its slot.
    assert usage["prompt_tokens"] - 20 < usage["cached_prompt_tokens"] < usage["prompt_tokens"]
    assert second.usage.cached_prompt_tokens == usage["cached_prompt_tokens"]
    assert client.usage.cached_prompt_tokens == first.usage.cached_prompt_tokens + second.usage.cached_prompt_tokens


def _llm_cfg(name: str, **settings) -> DictConfig:
    cfg = OmegaConf.load(CONF_LLM / f"{name}.yaml")
    cfg.merge_with({"cache": "off", **settings})
    return cfg


def test_streams_pinned_to_llama_cpp_slots_keep_their_prefixes(embedded_llm, tmp_path: Path) -> None:
    # Two streams with different long system prompts take turns on the real 2-slot server, pinned as
    # `+llm.slot_count=2` pins them: each step is read only from where it differs from that stream's previous
    # prompt, which its slot still holds.
    prompts = {"cartpole": SYSTEM, "lake": "You walk on a frozen lake to a gift, around the holes in the ice. " * 6}

    async def steps(client: LLMClient) -> dict[str, list[dict]]:
        usages: dict[str, list[dict]] = {name: [] for name in prompts}
        try:
            for step in range(3):
                for name, system in prompts.items():
                    completion = await client.complete(
                        [{"role": "system", "content": system}, {"role": "user", "content": f"Step {step}?"}],
                        max_tokens=2, session=name)
                    usages[name].append(completion.records[0]["usage"])
        finally:
            await client.aclose()
        return usages

    cfg = _llm_cfg("server", model=embedded_llm.model_name, base_url=embedded_llm.base_url, slot_count=2,
                   cache_path=str(tmp_path / "cache.sqlite"))
    with llm_session(cfg, max_concurrency=2) as client:
        assert client.slot_count == 2
        usages = asyncio.run(steps(client))
    for name, stream in usages.items():
        for usage in stream[1:]:
            assert usage["prompt_tokens"] - 20 < usage["cached_prompt_tokens"], (name, stream)


# One embedded server per process: a second one started beside the session's (embedded_llm) has hung in
# xllamacpp's Server destructor once (its queue loop never told to stop), so these run in a child process.
SLOT_COUNT_OF_LOCAL = """
import sys
from omegaconf import OmegaConf
from experiments.running.llm_session import llm_session
cfg = OmegaConf.load("conf/llm/local.yaml")
cfg.merge_with({"cache": "off", "parallel": 2}, OmegaConf.from_dotlist(sys.argv[1:]))
with llm_session(cfg, max_concurrency=2) as client:
    print("slot_count", client.slot_count)
"""


@pytest.mark.parametrize(("overrides", "slot_count"), [([], "2"), (["pin_slots=false"], "None")],
                         ids=["default", "pin_slots=false"])
def test_embedded_server_pins_one_slot_per_parallel(overrides: list[str], slot_count: str) -> None:
    result = subprocess.run([sys.executable, "-c", SLOT_COUNT_OF_LOCAL, *overrides], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"slot_count {slot_count}" in result.stdout


def test_another_llama_cpp_server_pins_slots_when_told(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    def ask(cfg: DictConfig) -> None:
        with llm_session(cfg, max_concurrency=2) as client:
            asyncio.run(_ask_and_close(client))

    server_cfg = {"model": "scripted", "base_url": fake_llm.base_url, "cache_path": str(tmp_path / "cache.sqlite")}
    ask(_llm_cfg("server", **server_cfg))
    assert "id_slot" not in fake_llm.requests[-1]  # off by default: other servers do not know id_slot
    ask(_llm_cfg("server", **server_cfg, slot_count=3))  # +llm.slot_count=3 on the command line
    assert fake_llm.requests[-1]["id_slot"] in (0, 1, 2)
    for wrong in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"llm.slot_count must be a whole number >= 1"):
            ask(_llm_cfg("server", **server_cfg, slot_count=wrong))


async def _ask_and_close(client: LLMClient) -> None:
    try:
        await client.complete([{"role": "user", "content": "Which way?"}], session="stream-0")
    finally:
        await client.aclose()
