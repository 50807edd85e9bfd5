"""Transcripts: calls.jsonl + texts.jsonl written through ResultsWriter, read back with load_calls.

The first tests use hand-made call records in the documented format (shared interface 1); the end-to-end
tests run real agents against the scripted HTTP server and compare the transcript with what it received.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import textgym  # noqa: F401 (registers the ids)
from agents.exe import EXEAgent
from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient
from agents.llm.transport import HTTPTransport
from agents.naive import NaiveAgent
from experiments.records.results import EpisodeKey, ResultsWriter, Shard
from experiments.records.transcripts import (
    CALLS_FILE,
    TEXTS_FILE,
    EpisodeCalls,
    Transcript,
    TranscriptWriter,
    load_calls,
    tag_calls,
    text_sha256,
)
from experiments.running.episodes import run_episode
from tests.fake_llm_server import FakeLLMServer

SYSTEM = "You balance a pole on a cart. " * 150  # a long L5-like system prompt (4.5 KB)
SCHEMA = {"type": "json_schema", "json_schema": {"name": "reply", "strict": True, "schema": {
    "type": "object", "properties": {"action": {"type": "integer", "enum": [1, 2]}}, "required": ["action"]}}}


def record(purpose: str, user: str, reply: str, *, schema: dict[str, Any] | None = None,
           cached: bool = False) -> dict[str, Any]:
    """One call record as LLMClient.complete() documents it."""
    return {
        "purpose": purpose,
        "request": {"model": "scripted", "messages": [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": user}],
                    "n": 1, "temperature": 0.0, "max_tokens": 48, "seed": 0, "response_format": schema},
        "texts": [reply],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 7, "cached_prompt_tokens": 1100},
        "latency_s": 0.25, "from_cache": cached,
    }


def episode_calls(steps: int, episode: int = 0) -> list[dict[str, Any]]:
    """EXE-shaped: a suggestion before the episode, one action per step, summary and insight after it."""
    calls = tag_calls([record("suggestion", f"Episode {episode}: what should I try?", "Push towards the lean.")],
                      "reset")
    for step in range(steps):
        calls += tag_calls([record("action", f"Episode {episode} state {step}: pole leans left.", '{"action": 1}',
                                   schema=SCHEMA, cached=step % 2 == 1)], "step", step)
    calls += tag_calls([record("summary", "Summarise the episode.", "I pushed left too often."),
                        record("insight", "What holds across episodes?", "Counter the lean early.")], "end")
    return calls


def row(episode: int, seed: int = 0, agent: str = "exe") -> dict[str, Any]:
    return {"env": "cartpole", "level": 5, "agent": agent, "llm_model": "scripted", "seed": seed,
            "episode": episode, "train_seed": None, "status": "done", "return": 10.0, "steps": 3}


def key(episode: int, seed: int = 0, agent: str = "exe") -> EpisodeKey:
    return EpisodeKey.of(row(episode, seed, agent))


def text_lines(run_dir: Path, name: str = TEXTS_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def test_calls_read_back_in_order_with_texts_resolved(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    for episode in range(2):
        writer.write_episode(row(episode), [], None, calls=episode_calls(3, episode))

    calls = load_calls(tmp_path, seed=0, episode=1)
    assert [(c["phase"], c["step"], c["purpose"]) for c in calls] == [
        ("reset", None, "suggestion"), ("step", 0, "action"), ("step", 1, "action"), ("step", 2, "action"),
        ("end", None, "summary"), ("end", None, "insight")]
    assert [c["call"] for c in calls] == list(range(6))
    assert calls[2]["request"]["messages"] == [{"role": "system", "content": SYSTEM},
                                               {"role": "user", "content": "Episode 1 state 1: pole leans left."}]
    assert calls[2]["request"]["response_format"] == SCHEMA and calls[0]["request"]["response_format"] is None
    assert calls[2]["request"]["temperature"] == 0.0 and calls[2]["request"]["max_tokens"] == 48
    assert calls[2]["texts"] == ['{"action": 1}'] and calls[2]["from_cache"] and not calls[1]["from_cache"]
    assert calls[2]["usage"] == {"prompt_tokens": 1200, "completion_tokens": 7, "cached_prompt_tokens": 1100}
    assert calls[5]["texts"] == ["Counter the lean early."]
    assert {c["episode"] for c in calls} == {1} and calls[0]["env"] == "cartpole" and calls[0]["level"] == 5
    assert load_calls(tmp_path, seed=0, episode=7) == []


def test_each_text_is_stored_once_per_run_dir(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    writer.write_episode(row(0), [], None, calls=episode_calls(200))
    writer.write_episode(row(1), [], None, calls=episode_calls(200, episode=1))
    texts = text_lines(tmp_path)
    assert [t.get("text") for t in texts].count(SYSTEM) == 1
    assert len(texts) == len({t["sha256"] for t in texts})
    assert all(t["sha256"] == text_sha256(t["text"]) for t in texts if "text" in t)
    # A resumed writer knows what is stored already and adds only new texts.
    ResultsWriter(tmp_path).write_episode(row(2), [], None, calls=episode_calls(2, episode=2))
    assert [t.get("text") for t in text_lines(tmp_path)].count(SYSTEM) == 1
    # 400 steps of a 4.5 KB system prompt cost a few hundred bytes a step, not the prompt's size.
    transcript_bytes = (tmp_path / CALLS_FILE).stat().st_size + (tmp_path / TEXTS_FILE).stat().st_size
    assert transcript_bytes / 402 < 1000 < len(SYSTEM)


def sliding_window_calls(steps: int, window: int = 10) -> list[dict[str, Any]]:
    """Action calls whose user prompt shows the last ``window`` transitions, as the agents' prompts do."""
    calls = []
    for step in range(steps):
        recent = "\n".join(f"- The car is at position {-0.5 + 0.001 * k:.4f} m ({0.1 + 0.001 * k:.2f} m left of "
                           f"the valley floor, 1.3 m left of the flag), moving right at 0.0011 m per step. You chose: "
                           f"push left. Reward -1.00." for k in range(max(0, step - window), step))
        calls += tag_calls([record("action", f"Recent steps:\n{recent}\n\nCurrent state: step {step}.\nChoose.",
                                   '{"action": 1}', schema=SCHEMA)], "step", step)
    return calls


def test_long_texts_share_their_lines(tmp_path: Path) -> None:
    calls = sliding_window_calls(60)
    ResultsWriter(tmp_path).write_episode(row(0), [], None, calls=calls)
    read = load_calls(tmp_path, 0, 0)
    assert [c["request"]["messages"] for c in read] == [c["request"]["messages"] for c in calls]
    entries = text_lines(tmp_path)
    split = [e for e in entries if "lines" in e]
    assert split and all(len(ref) == 16 for e in split for ref in e["lines"])
    transition_lines = [e["text"] for e in entries if e.get("text", "").startswith("- The car")]
    assert len(transition_lines) == len(set(transition_lines)) == 59  # each transition once, not ten times
    whole = len(SYSTEM) + sum(len(c["request"]["messages"][1]["content"]) for c in calls)  # each text once, whole
    assert (tmp_path / TEXTS_FILE).stat().st_size < 0.6 * whole


def test_a_line_reference_clash_keeps_the_text_whole(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("experiments.records.transcripts.LINE_REF_CHARS", 1)  # 16 possible references: clashes are sure
    calls = sliding_window_calls(30)
    ResultsWriter(tmp_path).write_episode(row(0), [], None, calls=calls)
    assert any(len(e.get("text", "")) > 256 for e in text_lines(tmp_path))
    read = load_calls(tmp_path, 0, 0)
    assert [c["request"]["messages"] for c in read] == [c["request"]["messages"] for c in calls]


def test_unfinished_episode_calls_are_dropped_on_resume(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    writer.write_episode(row(0), [], None, calls=episode_calls(2))
    # Killed after episode 1's calls were written but before its episodes.jsonl line, mid-way through a third write.
    writer.transcripts.write_episode(key(1), episode_calls(2, episode=1))
    with (tmp_path / CALLS_FILE).open("a") as handle:
        handle.write('{"env": "cartpole", "seed": 0, "epis')
    with (tmp_path / TEXTS_FILE).open("a") as handle:
        handle.write('{"sha256": "ab')

    resumed = ResultsWriter(tmp_path)
    assert Transcript(tmp_path).episodes() == [key(0)]
    assert (tmp_path / CALLS_FILE).read_text().endswith("\n") and (tmp_path / TEXTS_FILE).read_text().endswith("\n")
    resumed.write_episode(row(1), [], None, calls=episode_calls(2, episode=1))
    assert Transcript(tmp_path).episodes() == [key(0), key(1)]
    assert len(load_calls(tmp_path, 0, 1)) == 5  # once, not twice


def test_a_failed_record_writes_nothing(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    broken = episode_calls(1)
    del broken[1]["request"]["messages"]
    with pytest.raises(ValueError, match="request.messages"):
        writer.transcripts.write_episode(key(0), broken)
    untagged = [record("action", "state", "1")]
    with pytest.raises(ValueError, match="phase"):
        writer.transcripts.write_episode(key(0), untagged)
    assert not (tmp_path / CALLS_FILE).exists() and not (tmp_path / TEXTS_FILE).exists()
    with pytest.raises(ValueError, match="phase must be one of"):
        tag_calls(untagged, "during")
    with pytest.raises(ValueError, match="step index belongs to phase 'step'"):
        tag_calls(untagged, "reset", 3)


def test_calls_taken_as_they_come_keep_what_each_sent(tmp_path: Path) -> None:
    # An agent may hand the same message dict to several calls (cached turns), or replace the content of one it
    # reuses: each call's line holds what that call sent when it was taken.
    turn = {"role": "user", "content": "state 0"}
    shared = {"role": "user", "content": "an earlier turn"}
    calls = EpisodeCalls()
    for step in range(3):
        turn["content"] = f"state {step}"  # replaced in place, the dict stays the same object
        one = record("action", "unused", '{"action": 1}', schema=SCHEMA)
        one["request"]["messages"] = [{"role": "system", "content": SYSTEM}, shared, turn]
        calls.add(tag_calls([one], "step", step))
    assert len(calls) == 3 and [c["step"] for c in calls] == [0, 1, 2]  # iterating gives the records
    ResultsWriter(tmp_path).write_episode(row(0), [], None, calls=calls)
    read = load_calls(tmp_path, seed=0, episode=0)
    assert [c["request"]["messages"][2]["content"] for c in read] == ["state 0", "state 1", "state 2"]
    assert all(c["request"]["messages"][:2] == [{"role": "system", "content": SYSTEM}, shared] for c in read)
    with pytest.raises(ValueError, match="request.messages"):
        calls.add(tag_calls([{**record("action", "x", "y"), "request": {"messages": "not a list"}}], "step", 3))
    assert len(calls) == 3  # a bad batch is not taken
    fresh = {"role": "user", "content": "first seen in a batch that failed"}
    good = record("action", "unused", '{"action": 1}', schema=SCHEMA)
    good["request"]["messages"] = [shared, fresh]
    bad = {**record("action", "x", "y"), "request": {"messages": [fresh, {"role": "user"}]}}
    with pytest.raises(ValueError, match="request.messages"):
        calls.add(tag_calls([good, bad], "step", 3))
    assert len(calls) == 3
    calls.add(tag_calls([good], "step", 3))  # its dict was not kept as known, so its text is stored now
    assert text_sha256(fresh["content"]) in calls.texts


def test_a_schema_and_prompt_seen_in_earlier_episodes_are_each_episodes_own_texts(tmp_path: Path) -> None:
    # The process remembers schemas and text addresses across episodes: a run dir that never saw the earlier
    # episodes must still get every text its calls name, and a schema changed in place is a new schema.
    schema = json.loads(json.dumps(SCHEMA))
    EpisodeCalls(tag_calls([record("action", "earlier", "{}", schema=schema)], "step", 0))
    ResultsWriter(tmp_path / "later").write_episode(
        row(0), [], None, calls=EpisodeCalls(tag_calls([record("action", "later", "{}", schema=schema)], "step", 0)))
    [call] = load_calls(tmp_path / "later", seed=0, episode=0)
    assert call["request"]["response_format"] == SCHEMA and call["request"]["messages"][0]["content"] == SYSTEM
    schema["json_schema"]["name"] = "changed"
    ResultsWriter(tmp_path / "changed").write_episode(
        row(0), [], None, calls=EpisodeCalls(tag_calls([record("action", "x", "{}", schema=schema)], "step", 0)))
    [call] = load_calls(tmp_path / "changed", seed=0, episode=0)
    assert call["request"]["response_format"]["json_schema"]["name"] == "changed"


def test_built_lines_sent_across_processes_write_the_same_files(tmp_path: Path) -> None:
    # A worker sends the parent its episode's built lines and texts (WrittenCalls, pickled), not the records.
    built = EpisodeCalls(episode_calls(1))
    ResultsWriter(tmp_path / "records").write_episode(row(0), [], None, calls=episode_calls(1))
    ResultsWriter(tmp_path / "built").write_episode(row(0), [], None,
                                                    calls=pickle.loads(pickle.dumps(built.written())))
    for name in (CALLS_FILE, TEXTS_FILE):
        assert (tmp_path / "built" / name).read_bytes() == (tmp_path / "records" / name).read_bytes()
    assert load_calls(tmp_path / "built", seed=0, episode=0) == load_calls(tmp_path / "records", seed=0, episode=0)


def test_secret_looking_request_fields_are_never_written(tmp_path: Path) -> None:
    leaky = episode_calls(1)
    leaky[1]["request"] |= {"api_key": "sk-secret-123", "headers": {"Authorization": "Bearer sk-secret-123"}}
    ResultsWriter(tmp_path).write_episode(row(0), [], None, calls=leaky)
    for path in tmp_path.iterdir():
        assert "sk-secret-123" not in path.read_text(), path.name


def test_ambiguous_or_unknown_episode_identity_is_named(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    writer.write_episode(row(0, agent="exe"), [], None, calls=episode_calls(1))
    writer.write_episode(row(0, agent="reflexion"), [], None, calls=episode_calls(2))
    with pytest.raises(ValueError, match="2 episodes .* match .*agent="):
        load_calls(tmp_path, 0, 0)
    assert len(load_calls(tmp_path, 0, 0, agent="reflexion")) == 5
    with pytest.raises(ValueError, match=r"unknown episode fields \['agnet'\]"):
        load_calls(tmp_path, 0, 0, agnet="exe")


def test_shards_write_their_own_files_and_are_read_together(tmp_path: Path) -> None:
    first, second = ResultsWriter(tmp_path, shard=Shard(1, 2)), ResultsWriter(tmp_path, shard=Shard(2, 2))
    first.write_episode(row(0, seed=0), [], None, calls=episode_calls(1))
    second.write_episode(row(0, seed=1), [], None, calls=episode_calls(2))
    assert not (tmp_path / CALLS_FILE).exists()
    assert (tmp_path / "calls.shard1of2.jsonl").exists() and (tmp_path / "texts.shard2of2.jsonl").exists()
    transcript = Transcript(tmp_path)
    assert sorted(transcript.episodes(), key=lambda k: k.seed) == [key(0, seed=0), key(0, seed=1)]
    assert len(transcript.calls(1, 0)) == 5 and transcript.calls(1, 0)[1]["request"]["messages"][0]["content"] == SYSTEM


def test_a_writer_alone_needs_only_paths(tmp_path: Path) -> None:
    writer = TranscriptWriter(tmp_path / CALLS_FILE, tmp_path / TEXTS_FILE, finished=set())
    writer.write_episode(key(0), [])
    assert not (tmp_path / CALLS_FILE).exists()  # an episode without calls leaves no file behind


# ---- end to end: real agents, the real client, the scripted HTTP server ------------------------------------

SECRET = "sk-transcript-test-0123456789"


def play_and_record(server: FakeLLMServer, run_dir: Path, agent_class: type, level: int, episodes: int,
                    max_steps: int, cache: ResponseCache | None = None, env_id: str = "TextGym-CartPole-v0"
                    ) -> list[Any]:
    """Play a stream as the runner does and record each episode through ResultsWriter."""
    client = LLMClient("scripted", HTTPTransport(server.base_url, "TEXTGYM_TEST_KEY"), cache=cache)
    agent = agent_class(llm=client, seed=0)
    env = gym.make(env_id, level=level, max_episode_steps=max_steps)
    writer = ResultsWriter(run_dir)

    async def stream() -> list[Any]:
        records = []
        try:
            for k in range(episodes):
                record = await run_episode(env, agent, 0, k, episodes)
                writer.write_episode(row(k, agent=agent_class.name) | {"level": level}, record.step_records,
                                     agent.state(), calls=record.calls)
                records.append(record)
        finally:
            await client.aclose()
        return records

    return asyncio.run(stream())


def test_transcript_is_what_the_server_received_and_answered(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TEXTGYM_TEST_KEY", SECRET)
    with FakeLLMServer() as server:
        server.api_key = SECRET  # the key really travels: a request without it would get a 401
        # L3: EXE learns across trials, so the first episode ends with a summary and an insight.
        records = play_and_record(server, tmp_path, EXEAgent, level=3, episodes=2, max_steps=6)
    calls = [c for k in range(2) for c in load_calls(tmp_path, 0, k)]
    assert len(calls) == len(server.requests) == sum(r.usage.calls for r in records)
    for call, request in zip(calls, server.requests, strict=True):
        assert call["request"]["messages"] == request["messages"]
        assert call["request"]["response_format"] == request.get("response_format")
        assert call["request"]["max_tokens"] == request["max_tokens"]
        assert call["usage"]["prompt_tokens"] == sum(len(m["content"]) for m in request["messages"]) // 4
        assert call["usage"]["cached_prompt_tokens"] is not None and call["from_cache"] is False
        assert call["latency_s"] > 0
    first = load_calls(tmp_path, 0, 0)
    steps = records[0].steps
    assert [c["phase"] for c in first] == ["reset"] + ["step"] * steps + ["end"] * (len(first) - steps - 1)
    assert first[0]["purpose"] == "suggestion" and {c["purpose"] for c in first[1:steps + 1]} == {"action"}
    assert [c["step"] for c in first[1:steps + 1]] == list(range(steps))
    assert {"summary", "insight"} <= {c["purpose"] for c in first if c["phase"] == "end"}
    step_replies = [json.loads(line)["replies"] for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [c["texts"] for c in first[1:steps + 1]] == step_replies[:steps]
    assert all(server_auth == f"Bearer {SECRET}" for server_auth in server.authorizations)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(), path


def test_cache_hits_are_marked(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        play_and_record(server, tmp_path / "first", NaiveAgent, level=1, episodes=1, max_steps=5, cache=cache)
        asked = len(server.requests)
        play_and_record(server, tmp_path / "second", NaiveAgent, level=1, episodes=1, max_steps=5, cache=cache)
    assert len(server.requests) == asked  # the second run was answered from the cache
    first, second = load_calls(tmp_path / "first", 0, 0), load_calls(tmp_path / "second", 0, 0)
    assert [c["from_cache"] for c in first] == [False] * len(first)
    assert [c["from_cache"] for c in second] == [True] * len(first)
    assert [c["texts"] for c in second] == [c["texts"] for c in first]


@pytest.mark.parametrize("level", [1, 5])
def test_transcript_bytes_per_step_stay_near_the_step_records(tmp_path: Path, level: int) -> None:
    """A 200-step L5 episode writes its long system prompt once, so L5 costs about what L1 costs a step."""
    with FakeLLMServer() as server:  # MountainCar's first action never reaches the flag: all 200 steps are played
        records = play_and_record(server, tmp_path, NaiveAgent, level=level, episodes=1, max_steps=200,
                                  env_id="TextGym-MountainCar-v0")
        system_prompt = server.requests[0]["messages"][0]["content"]
    steps = records[0].steps
    transcript = (tmp_path / CALLS_FILE).stat().st_size + (tmp_path / TEXTS_FILE).stat().st_size
    step_records = (tmp_path / "steps.jsonl").stat().st_size
    sent = sum(len(json.dumps(r["messages"])) for r in server.requests)
    print(f"L{level}: {steps} steps, transcript {transcript / steps:.0f} B/step, steps.jsonl "
          f"{step_records / steps:.0f} B/step, messages sent {sent / steps:.0f} B/step, "
          f"system prompt {len(system_prompt)} chars")
    assert [t["sha256"] for t in text_lines(tmp_path)].count(text_sha256(system_prompt)) == 1
    # A full history window (21 messages) is stored as the system prompt, one run of the call before and the
    # step's new turns; reading it back gives every message as it was sent.
    stored = [json.loads(line)["request"]["messages"] for line in (tmp_path / CALLS_FILE).read_text().splitlines()]
    assert max(len(messages) for messages in stored[20:]) <= 5 and any("previous" in m for m in stored[20])
    sent_messages = [[{"role": m["role"], "sha256": text_sha256(m["content"])} for m in r["messages"]]
                     for r in server.requests]
    assert [line["request"]["messages"] for line in Transcript(tmp_path).raw_calls()] == sent_messages
    assert transcript < 3.5 * step_records  # about what a step's own new prompt lines add, whatever the level
    assert (tmp_path / TEXTS_FILE).stat().st_size < sent / 2
