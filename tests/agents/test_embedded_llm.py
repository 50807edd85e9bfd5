"""The real embedded SmolLM2 server end to end: constrained actions on a short CartPole episode, and cache replay;
the Q8_0 copy of the shipped weights it serves by default (made once into the cache, under a file lock)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import gguf
import httpx
import numpy as np
import pytest
from gguf import GGMLQuantizationType, LlamaFileType
from omegaconf import OmegaConf

from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient, Sampling
from agents.llm.embedded import (
    EmbeddedServer,
    default_model_path,
    q8_0_copy,
    q8_0_copy_path,
    shipped_model_path,
)
from agents.llm.transport import HTTPTransport
from agents.naive import NaiveAgent
from experiments.running.llm_session import llm_session
from tests.agents.helpers import play

REPO_ROOT = Path(__file__).resolve().parents[2]


def _client(server, cache: ResponseCache | None) -> LLMClient:
    return LLMClient(server.model_name, HTTPTransport(server.base_url, None, max_concurrency=2), cache=cache)


def test_smollm2_plays_cartpole_with_valid_actions_and_replays_from_cache(embedded_llm, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    first_client = _client(embedded_llm, cache)
    first = play(NaiveAgent(llm=first_client), "TextGym-CartPole-v0", level=1, episodes=1, max_episode_steps=6)[0]
    assert first.steps > 0
    assert first.invalid_actions == 0 and first.invalid_replies == 0  # json_schema keeps a 135M model legal
    assert first.usage.calls == first.steps and first.usage.cached_calls == 0
    assert first.usage.prompt_tokens > 100 and first.usage.completion_tokens > 0
    assert len(cache) == first.steps

    second_client = _client(embedded_llm, cache)
    second = play(NaiveAgent(llm=second_client), "TextGym-CartPole-v0", level=1, episodes=1, max_episode_steps=6)[0]
    assert second.usage.cached_calls == second.usage.calls == first.steps  # zero model calls
    assert second.usage.latency_s == 0
    assert [s["action_text"] for s in second.step_records] == [s["action_text"] for s in first.step_records]


def test_smollm2_continuous_actions_are_numbers_in_range(embedded_llm) -> None:
    record = play(NaiveAgent(llm=_client(embedded_llm, None)), "TextGym-Pendulum-v0", episodes=1,
                  max_episode_steps=3)[0]
    assert record.invalid_actions == 0
    for step in record.step_records:
        assert -2.0 <= step["action"][0] <= 2.0


def test_the_default_model_is_the_cached_q8_0_copy_and_answers(embedded_llm, monkeypatch) -> None:
    copy = embedded_llm.model_path
    # The session's server started before this test's cache isolation: its copy is in that TextGym cache's models/.
    cache_root = copy.parents[2]
    assert copy == q8_0_copy_path(shipped_model_path(), cache_root / "models")
    assert copy.name == "SmolLM2-135M-Instruct.Q8_0.gguf"
    # What llama.cpp made of the file: Q8_0 by its general.file_type, served under the copy's name.
    props = httpx.get(embedded_llm.base_url.removesuffix("/v1") + "/props", timeout=10).json()
    assert (props["model_path"], props["model_ftype"]) == (str(copy), "Q8_0")
    models = httpx.get(embedded_llm.base_url + "/models", timeout=10).json()["data"]
    assert [model["id"] for model in models] == [embedded_llm.model_name] == ["SmolLM2-135M-Instruct.Q8_0"]

    client = LLMClient(embedded_llm.model_name, HTTPTransport(embedded_llm.base_url, None, max_concurrency=1),
                       sampling=Sampling(max_tokens=12))

    async def ask() -> str:
        try:
            reply = await client.complete([{"role": "user", "content": "What is the capital of France? One word."}])
            return reply.texts[0]
        finally:
            await client.aclose()

    assert "Paris" in asyncio.run(ask())

    before = copy.stat()
    monkeypatch.setenv("TEXTGYM_CACHE", str(cache_root))
    assert default_model_path() == copy  # a second start reuses the copy: no reconversion
    after = copy.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


START_THEN_STOP = """
from agents.llm.embedded import EmbeddedServer
for _ in range(10):
    server = EmbeddedServer(parallel=2).start()
    server.stop()
print("stopped 10 times")
"""


def test_a_server_stopped_right_after_it_started_stops() -> None:
    # llama.cpp's main loop starts after the constructor returns; a stop that came first once hung for good (in
    # about one of three tries). In a child process, so that a hang fails this test instead of the suite.
    result = subprocess.run([sys.executable, "-c", START_THEN_STOP], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "stopped 10 times" in result.stdout


def test_requantize_none_serves_the_shipped_file_and_unknown_values_fail_in_one_line(tmp_path: Path) -> None:
    assert default_model_path("none") == shipped_model_path()
    for wrong in ("q4_k", "Q8_0", None):
        with pytest.raises(ValueError, match=rf"^unknown llm.requantize {wrong!r}: expected one of q8_0, none$"):
            EmbeddedServer(requantize=wrong)  # type: ignore[arg-type]
    cfg = OmegaConf.load(REPO_ROOT / "conf" / "llm" / "local.yaml")
    assert cfg.requantize == "q8_0"
    cfg.merge_with({"cache": "off", "requantize": "int8", "cache_path": str(tmp_path / "cache.sqlite")})
    with pytest.raises(ValueError, match="unknown llm.requantize 'int8'"), llm_session(cfg, max_concurrency=1):
        pass


def _tiny_q4_1_model(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A two-tensor GGUF file shaped like the shipped one (mostly Q4_1, one F32 norm); returns both tensors' values."""
    rng = np.random.default_rng(0)
    weights = gguf.quants.quantize(rng.standard_normal((8, 64)).astype(np.float32), GGMLQuantizationType.Q4_1)
    norm = rng.standard_normal(64).astype(np.float32)
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name("tiny")
    writer.add_file_type(LlamaFileType.MOSTLY_Q4_1)
    writer.add_array("tokenizer.ggml.tokens", ["<s>", "hello", "world"])
    writer.add_tensor("blk.0.ffn_up.weight", weights, raw_dtype=GGMLQuantizationType.Q4_1)
    writer.add_tensor("blk.0.attn_norm.weight", norm)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return gguf.quants.dequantize(weights, GGMLQuantizationType.Q4_1), norm


def test_q8_0_copy_keeps_metadata_and_values_and_is_keyed_by_the_source(tmp_path: Path) -> None:
    source = tmp_path / "tiny.Q4_1.gguf"
    weights, norm = _tiny_q4_1_model(source)
    copy = q8_0_copy(source, tmp_path / "models")
    assert copy.name == "tiny.Q8_0.gguf" and sorted(p.name for p in copy.parent.iterdir()) == [
        "convert.lock", "tiny.Q8_0.gguf"]  # no temporary file left behind
    reader = gguf.GGUFReader(copy)
    assert reader.fields["general.file_type"].contents() == LlamaFileType.MOSTLY_Q8_0
    assert reader.fields["general.name"].contents() == "tiny"
    assert reader.fields["tokenizer.ggml.tokens"].contents() == ["<s>", "hello", "world"]
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    assert tensors["blk.0.ffn_up.weight"].tensor_type == GGMLQuantizationType.Q8_0
    requantized = gguf.quants.dequantize(tensors["blk.0.ffn_up.weight"].data, GGMLQuantizationType.Q8_0)
    np.testing.assert_allclose(requantized, weights, atol=np.abs(weights).max() / 200)
    assert tensors["blk.0.attn_norm.weight"].tensor_type == GGMLQuantizationType.F32
    np.testing.assert_array_equal(tensors["blk.0.attn_norm.weight"].data, norm)

    made = copy.stat().st_mtime_ns
    assert q8_0_copy(source, tmp_path / "models") == copy and copy.stat().st_mtime_ns == made
    os.utime(source, ns=(made + 10**9, made + 10**9))  # a reinstalled package: a new copy beside the old one
    assert q8_0_copy_path(source, tmp_path / "models") != copy
    assert q8_0_copy(source, tmp_path / "models").is_file()


CONVERT = """
import logging, sys
from pathlib import Path
from agents.llm.embedded import q8_0_copy
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
print(q8_0_copy(Path(sys.argv[1]), Path(sys.argv[2])))
"""


def test_processes_starting_together_convert_once(tmp_path: Path) -> None:
    source, models = tmp_path / "tiny.Q4_1.gguf", tmp_path / "models"
    _tiny_q4_1_model(source)
    target = q8_0_copy_path(source, models)
    target.parent.mkdir(parents=True)
    with open(target.parent / "convert.lock", "w") as lock:
        # While another process holds the lock (converting), both wait; then one converts and one reuses.
        fcntl.flock(lock, fcntl.LOCK_EX)
        children = [subprocess.Popen([sys.executable, "-c", CONVERT, str(source), str(models)], cwd=REPO_ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        time.sleep(1)
        assert [child.poll() for child in children] == [None, None] and not target.exists()
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err[-2000:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == [str(target)] * 2
    assert sum(err.count("agents.llm.embedded: converting") for _, err in outputs) == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["convert.lock", "tiny.Q8_0.gguf"]


CLASSIC_ENVS = ["CartPole", "Acrobot", "MountainCar", "MountainCarContinuous", "Pendulum", "LunarLander",
                "Blackjack", "Taxi", "CliffWalking", "FrozenLake"]


def test_the_longest_action_prompts_fit_an_embedded_slot(embedded_llm, fake_llm) -> None:
    """Naive at L4 reads five offline trajectories as text; with block trimming its history reaches 19 steps by
    step 20. Counted with SmolLM2's own tokenizer (it splits every digit), that prompt and a reply must fit the
    slot ``llm=local`` gives each stream, or llama.cpp rejects the request."""
    local = OmegaConf.load(REPO_ROOT / "conf" / "llm" / "local.yaml")
    server = embedded_llm.base_url.removesuffix("/v1")
    longest = {}
    for task in CLASSIC_ENVS:
        before = len(fake_llm.requests)
        agent = NaiveAgent(llm=LLMClient("scripted", HTTPTransport(fake_llm.base_url, None)),
                           history_trim="block")
        play(agent, f"TextGym-{task}-v0", level=4, episodes=1, max_episode_steps=20)
        messages = fake_llm.requests[-1]["messages"]  # the last request holds the most turns
        assert len(fake_llm.requests) - before < 20 or sum(m["role"] == "assistant" for m in messages) == 19
        prompt = httpx.post(f"{server}/apply-template", json={"messages": messages}).json()["prompt"]
        longest[task] = len(httpx.post(f"{server}/tokenize", json={"content": prompt}).json()["tokens"])
    assert max(longest.values()) + local.max_tokens <= local.context_per_slot, longest
    assert max(longest.values()) > local.context_per_slot / 2  # the slot is sized to the work, not far above it
