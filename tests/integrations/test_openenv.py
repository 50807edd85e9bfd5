"""OpenEnv serves a TextGym chat env: OpenEnv's own GenericEnvClient plays it over WebSockets, concurrently, with
the returns of the in-process ChatEnv; the server caps sessions, frees abandoned ones and survives bad payloads."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from openenv import GenericEnvClient
from websockets.asyncio.client import connect

from tests.integrations.conftest import free_port
from textgym.chat import ChatEnv
from textgym.integrations.openenv import create_app

# Drifts left, so seeds end at different steps; the last reply is invalid and falls back, flagged.
REPLIES = ['{"action": "push left"}', "push left", "<action>push right</action>", "I am not sure."]
STEP_CAP = 25  # short episodes: the test is about the protocol, not the task


def scripted(step: int) -> str:
    return REPLIES[step % len(REPLIES)]


def in_process(seed: int) -> tuple[float, list[float]]:
    env = ChatEnv("cartpole", 1, max_episode_steps=STEP_CAP)
    env.reset(seed=seed)
    step = 0
    while True:
        _, _, terminated, truncated, info = env.step(scripted(step))
        step += 1
        if terminated or truncated:
            return info["return"], info["step_rewards"]


def in_process_return(seed: int) -> float:
    return in_process(seed)[0]


async def play(url: str, seed: int) -> tuple[float, list[float]]:
    async with GenericEnvClient(base_url=url) as client:
        result = await client.reset(seed=seed)
        assert [m["role"] for m in result.observation["messages"]] == ["system", "user"]
        rewards, step = [], 0
        while not result.done:
            result = await client.step({"reply": scripted(step)})
            rewards.append(result.reward)
            step += 1
        info = result.observation["info"]
        assert info["step_rewards"] == rewards
        return info["return"], rewards


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


async def wait_for_sessions(url: str, active: int, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = get_json(f"{url}/sessions")
        if counts["active"] == active or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.05)


def test_schema_names_the_one_required_text_field(serve_app) -> None:
    with serve_app(create_app("cartpole", 1, max_episode_steps=STEP_CAP)) as url:
        action = get_json(f"{url}/schema")["action"]
    assert action["required"] == ["reply"] and action["properties"]["reply"]["type"] == "string"


def test_eight_concurrent_websocket_episodes_match_in_process_chat_env(serve_app) -> None:
    seeds = list(range(8))
    with serve_app(create_app("cartpole", 1, max_sessions=8, max_episode_steps=STEP_CAP)) as url:
        async def main():
            return await asyncio.gather(*(play(url, seed) for seed in seeds))

        results = asyncio.run(main())
        assert asyncio.run(wait_for_sessions(url, 0))["active"] == 0  # each closes as its client leaves
    expected = [in_process(seed) for seed in seeds]
    assert results == expected
    assert len({ret for ret, _ in expected}) > 1  # the seeds give different episodes, so the match means something


def test_tool_calls_play_under_the_tool_action_format(serve_app) -> None:
    with serve_app(create_app("cartpole", 1, action_format="tool", max_episode_steps=STEP_CAP)) as url:
        async def main():
            async with GenericEnvClient(base_url=url) as client:
                reset = await client.reset(seed=0)
                call = {"id": "call-1", "type": "function",
                        "function": {"name": "act", "arguments": json.dumps({"action": "push left"})}}
                played = await client.step({"reply": "", "tool_calls": [call]})
                text_only = await client.step({"reply": "push left"})
                return reset, played, text_only

        reset, played, text_only = asyncio.run(main())
    assert reset.observation["info"]["tools"][0]["function"]["name"] == "act"
    assert played.observation["info"]["invalid_action"] is False
    assert played.observation["messages"][0]["role"] == "tool"  # the call is answered as a tool turn
    assert text_only.observation["info"]["invalid_action"] is True  # plain text is no tool call


def test_sessions_beyond_the_cap_are_refused_and_others_go_on(serve_app) -> None:
    with serve_app(create_app("cartpole", 1, max_sessions=2, max_episode_steps=STEP_CAP)) as url:
        async def main():
            async with GenericEnvClient(base_url=url) as first, GenericEnvClient(base_url=url) as second:
                await first.reset(seed=0)
                await second.reset(seed=1)
                with pytest.raises(RuntimeError, match="CAPACITY_REACHED"):
                    async with GenericEnvClient(base_url=url) as third:
                        await third.reset(seed=2)
                assert not (await first.step({"reply": REPLIES[0]})).done  # the admitted ones play on
            await wait_for_sessions(url, 0)
            return await play(url, 3)  # capacity is back once they left

        assert asyncio.run(main())[0] == in_process_return(3)


def test_a_client_that_vanishes_mid_episode_frees_its_session(serve_app) -> None:
    with serve_app(create_app("cartpole", 1, max_sessions=4, max_episode_steps=STEP_CAP)) as url:
        async def main():
            ws = await connect(url.replace("http", "ws") + "/ws")
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
            await ws.recv()
            await ws.send(json.dumps({"type": "step", "data": {"reply": REPLIES[0]}}))
            await ws.recv()
            assert get_json(f"{url}/sessions")["active"] == 1
            ws.transport.abort()  # no close frame: the TCP connection just drops
            return await wait_for_sessions(url, 0)

        assert asyncio.run(main())["active"] == 0


def test_malformed_and_oversized_actions_get_clear_errors_and_sessions_go_on(serve_app) -> None:
    app = create_app("cartpole", 1, max_sessions=4, max_reply_chars=1000, max_episode_steps=STEP_CAP)
    with serve_app(app, ws_max_size=64 * 1024) as url:
        async def exchange(ws, message) -> dict:
            await ws.send(message if isinstance(message, str) else json.dumps(message))
            return json.loads(await ws.recv())

        async def main():
            bystander = asyncio.create_task(play(url, 5))
            async with connect(url.replace("http", "ws") + "/ws") as ws:
                await exchange(ws, {"type": "reset", "data": {"seed": 5}})
                errors = [await exchange(ws, "{not json"),
                          await exchange(ws, {"type": "step", "data": {"text": "push left"}}),
                          await exchange(ws, {"type": "step", "data": {"reply": 42}}),
                          await exchange(ws, {"type": "step", "data": {"reply": "x" * 5000}})]
                assert [e["type"] for e in errors] == ["error"] * 4
                assert "Invalid JSON" in errors[0]["data"]["message"]
                assert {error["loc"][-1] for error in errors[1]["data"]["errors"]} >= {"reply"}
                assert errors[2]["data"]["code"] == "VALIDATION_ERROR"
                assert "at most 1000 are allowed" in errors[3]["data"]["message"]
                step = await exchange(ws, {"type": "step", "data": {"reply": REPLIES[0]}})
                assert step["type"] == "observation" and step["data"]["reward"] == 1.0  # the same session plays on
            # A frame over the WebSocket limit closes only the connection that sent it.
            async with connect(url.replace("http", "ws") + "/ws", max_size=None) as ws:
                await ws.send(json.dumps({"type": "step", "data": {"reply": "x" * 100_000}}))
                with pytest.raises(Exception, match="1009|too big"):
                    await ws.recv()
            return await bystander

        assert asyncio.run(main())[0] == in_process_return(5)


def test_memory_stays_flat_over_many_sessions(serve_app) -> None:
    """Bounded stand-in for benchmarks/serve_load.py's 1,000 episodes: 150 sessions, RSS measured."""
    with serve_app(create_app("cartpole", 1, max_sessions=16, max_episode_steps=5)) as url:
        async def wave(first_seed: int, count: int):
            for start in range(first_seed, first_seed + count, 10):
                await asyncio.gather(*(play(url, seed) for seed in range(start, start + 10)))

        asyncio.run(wave(0, 50))  # warm-up: caches, thread pools, allocator arenas
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        asyncio.run(wave(50, 100))
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        counts = asyncio.run(wait_for_sessions(url, 0))
    assert counts["active"] == 0 and counts["created"] >= 150
    assert grown_mb < 25, f"peak RSS grew {grown_mb:.1f} MB over 100 more sessions"


def test_textgym_serve_cli_serves_and_refuses_bad_config(tmp_path) -> None:
    bad = subprocess.run([sys.executable, "-m", "experiments.serve", "level=3"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "not a training level" in bad.stderr
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "experiments.serve", "env=cartpole", "level=1", f"port={port}",
                               "max_steps=5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "WANDB_MODE": "disabled"})
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                assert get_json(f"http://127.0.0.1:{port}/sessions")["max"] == 64
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.2)
        ret, rewards = asyncio.run(play(f"http://127.0.0.1:{port}", 0))
        assert len(rewards) <= 5
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
