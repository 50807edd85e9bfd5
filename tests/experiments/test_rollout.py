"""textgym-rollout and experiments.rollout: against the scripted fake server on 127.0.0.1, through the real
LLMClient, ChatEnv, result writer, Hydra app, replay, report and viewer."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient, RetryPolicy, Sampling
from agents.llm.transport import HTTPTransport, parse_reply
from experiments.records.results import load_episodes
from experiments.reports.replay import parse_options
from experiments.reports.replay import run as replay
from experiments.reports.report import write_report
from experiments.reports.viewer import write_viewer
from experiments.rollout import RolloutSettings, rollouts
from tests.experiments.conftest import REPO_ROOT, run_cli
from tests.fake_llm_server import FakeLLMServer, Faults
from textgym.chat import ChatEnv


def sampled_responder(request: dict[str, Any]) -> str:
    """A reply drawn from the request's sampling seed and turn: a group's rollouts differ, a rerun repeats them;
    one turn in five names no action."""
    rng = random.Random(f"{request.get('seed')}:{len(request['messages'])}")
    return rng.choice(["<action>push left</action>", "<action>push right</action>", '{"action": "push right"}',
                       "<action>2</action>", "I am not sure."])


def client_of(server: FakeLLMServer, **sampling: Any) -> LLMClient:
    return LLMClient("scripted", HTTPTransport(server.base_url, api_key_env=None, max_concurrency=8),
                     sampling=Sampling(temperature=1.0, **sampling), retry=RetryPolicy(backoff_s=0.01))


def test_a_group_starts_from_one_state_and_each_turn_has_its_reward_tokens_and_logprobs() -> None:
    chat = {"action_format": "strict", "format_penalty": 0.5, "max_episode_steps": 12}
    with FakeLLMServer(sampled_responder) as server:
        played = rollouts(client_of(server), "cartpole", 1, seeds=[3, 4], n=4, concurrency=5, chat=chat)
        requests = server.requests
    assert [(r.seed, r.index) for r in played] == [(s, i) for s in (3, 4) for i in range(4)]
    for seed in (3, 4):
        group = [r for r in played if r.seed == seed]
        # Every rollout of a group starts from the state textgym-eval's episode 0 of stream `seed` starts from.
        expected, _ = ChatEnv("cartpole", 1, **chat).reset(seed=seed * 1000)
        assert {r.reset_seed for r in group} == {seed * 1000}
        assert all(r.messages[:2] == expected for r in group)
        assert len({tuple(t.reply for t in r.turns) for r in group}) > 1, "a group's rollouts should differ"
    assert played[0].messages[1] != played[4].messages[1]  # two seeds, two start states
    assert len({q["seed"] for q in requests}) == 8 and all(q["logprobs"] is True for q in requests)
    for rollout in played:
        assert rollout.status == "done" and rollout.error is None
        assert rollout.steps == len(rollout.turns) <= 12 and (rollout.terminated or rollout.steps == 12)
        # Per-turn rewards: the env's +1 less the penalty on each invalid reply; the env return counts the +1s.
        assert rollout.step_rewards == [1.0 - 0.5 * turn.invalid for turn in rollout.turns]
        assert rollout.env_return == rollout.steps
        assert rollout.episode_return == pytest.approx(rollout.steps - 0.5 * rollout.invalid_replies)
        for turn in rollout.turns:  # the fake server gives llama.cpp-style logprobs: a token per 4 characters
            assert len(turn.token_ids) == len(turn.logprobs) == -(-len(turn.reply) // 4)
            assert set(turn.logprobs) == {-0.25}
        # The conversation: system, first state, then each reply and the env's answer.
        assert [m["role"] for m in rollout.messages[:4]] == ["system", "user", "assistant", "user"]
        assert [m["content"] for m in rollout.messages if m["role"] == "assistant"] == [t.reply for t in
                                                                                      rollout.turns]
    assert any(r.invalid_replies for r in played), "the responder's chatter should have cost a penalty somewhere"


def test_retry_turns_play_no_env_step_and_sampled_requests_skip_the_cache(tmp_path: Path) -> None:
    replies = iter(["no idea", "<action>push left</action>"] * 100)
    with FakeLLMServer(lambda request: next(replies)) as server:
        client = client_of(server)
        client.cache = ResponseCache(str(tmp_path / "cache.sqlite"), "readwrite", sampled=True)
        chat = {"action_format": "strict", "invalid_action": "retry:1", "max_episode_steps": 3}
        first = rollouts(client, "cartpole", 1, seeds=[0], n=1, chat=chat, settings=RolloutSettings(logprobs=False))
        second = rollouts(client, "cartpole", 1, seeds=[0], n=1, chat=chat)
        asked = len(server.requests)
    (rollout,) = first
    assert [t.env_step for t in rollout.turns] == [None, 0, None, 1, None, 2]
    assert rollout.step_rewards == [0.0, 1.0] * 3 and rollout.steps == 3
    assert all(t.logprobs is None and t.token_ids is None for t in rollout.turns)  # not asked for
    assert second[0].turns[0].logprobs == [-0.25] * 2
    assert asked == 12 and client.usage.cached_calls == 0  # a sample is never answered from the cache


def test_failed_rollouts_are_recorded_with_their_reason_and_never_stop_the_others(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "rollout" / "cartpole-L1"
    args = ["experiments.rollout", "env=cartpole", "level=1", "seeds=[0,1]", "n=3", "concurrency=6",
            "max_steps=6", "llm=server", "llm.model=scripted", "llm.max_retries=2", "+llm.backoff_s=0.01",
            "progress=false", f"results_dir={tmp_path / 'runs'}"]
    with FakeLLMServer(sampled_responder, faults=Faults(rate=0.15, seed=2, kinds=("http_500", "truncated_json"))) \
            as server:
        server.fail_next = [400]  # refused for good: one rollout fails at its first request
        first = run_cli([*args, f"llm.base_url={server.base_url}"], cwd=REPO_ROOT, check=False)
        injected = sum(server.injected.values())
        assert first.returncode == 1, first.stderr
        assert "5 episodes done, 1 failed" in first.stdout and "HTTP 400" in first.stdout
        rows = load_episodes([run_dir], include_failed=True)
        failed = [r for r in rows if r["status"] == "failed"]
        assert len(rows) == 6 and len(failed) == 1 and failed[0]["return"] is None
        assert "rejected the request" in failed[0]["error"] and "HTTP 400" in failed[0]["error"]
        assert injected > 1  # transient faults were retried inside the rollouts that finished
        second = run_cli([*args, f"llm.base_url={server.base_url}"], cwd=REPO_ROOT)  # resumes: plays the failed one
        assert "6 episodes done, 0 failed" in second.stdout
    rows = load_episodes([run_dir])
    assert sorted((r["seed"], r["episode"]) for r in rows) == [(s, i) for s in (0, 1) for i in range(3)]
    row = rows[0]
    assert row["agent"] == "rollout" and row["llm_model"] == "scripted" and row["status"] == "done"
    assert row["notes"]["step_rewards"] and row["notes"]["reset_seed"] == row["seed"] * 1000
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert all(step["turns"] and step["turns"][-1]["env_step"] == step["step"] for step in steps)
    assert all(step["turns"][-1]["logprobs"] for step in steps)


def test_replay_report_and_viewer_read_a_rollout_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "rollout" / "cartpole-L2"
    with FakeLLMServer(sampled_responder) as server:
        args = ["experiments.rollout", "env=cartpole", "level=2", "seeds=[5]", "n=3", "max_steps=10", "llm=server",
                f"llm.base_url={server.base_url}", "llm.model=scripted", "progress=false", "chat.history=2",
                f"hydra.run.dir={run_dir}"]
        done = run_cli(args, cwd=REPO_ROOT)
    assert "3 episodes done, 0 failed" in done.stdout
    out, err = io.StringIO(), io.StringIO()
    assert replay(parse_options([str(run_dir)]), out=out, err=err) == 0, err.getvalue()
    assert "all 3 episodes match their recording" in out.getvalue()
    report = write_report([str(run_dir)], tmp_path / "report")
    (line,) = [r for r in report if r.agent == "rollout"]
    assert line.episodes == 3 and line.env == "cartpole" and line.level == 2
    viewer = write_viewer([run_dir], tmp_path / "view.html", frames="first-episode", max_frames=20)
    html = viewer.read_text()
    assert "rollout" in html and "push" in html


def test_replay_accepts_rollouts_an_invalid_reply_ended(tmp_path: Path) -> None:
    # invalid_action=terminate ends a rollout on a reply that names no action: after its last env step, with the env
    # still going. Replay must see that ending as recorded, not as an episode that never finished.
    run_dir = tmp_path / "rollout" / "cartpole-L1"
    with FakeLLMServer(sampled_responder) as server:
        args = ["experiments.rollout", "env=cartpole", "level=1", "seeds=[5,6]", "n=4", "max_steps=10", "llm=server",
                f"llm.base_url={server.base_url}", "llm.model=scripted", "progress=false",
                "chat.invalid_action=terminate", f"hydra.run.dir={run_dir}"]
        done = run_cli(args, cwd=REPO_ROOT)
    assert "8 episodes done, 0 failed" in done.stdout
    rows = load_episodes([run_dir])
    ended_by_reply = [row for row in rows if row["notes"].get("ended_by") == "invalid_reply"]
    assert ended_by_reply and all(not row["terminated"] and row["steps"] < 10 for row in ended_by_reply)
    out, err = io.StringIO(), io.StringIO()
    assert replay(parse_options([str(run_dir)]), out=out, err=err) == 0, out.getvalue() + err.getvalue()
    assert "all 8 episodes match their recording" in out.getvalue()


def test_bad_settings_fail_in_one_line_before_anything_runs(tmp_path: Path) -> None:
    result = run_cli(["experiments.rollout", "llm=server", "llm.base_url=http://127.0.0.1:9/v1", "llm.model=m",
                      f"results_dir={tmp_path}", "chat.action_format=tool"], cwd=REPO_ROOT, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("textgym-rollout: error: action_format 'tool' is not for rollouts: the client returns")
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]  # no run dir left behind
    client = LLMClient("m", HTTPTransport("http://127.0.0.1:9/v1", api_key_env=None))
    for kwargs, says in [({"level": 3}, "level 3 (learning from the agent's own earlier episodes) is a protocol"),
                         ({"n": 0}, "n (rollouts per seed) must be an int from 1 to 1000, got 0"),
                         ({"seeds": []}, "seeds must be a non-empty list of ints >= 0, got []"),
                         ({"chat": {"invalid_action": "retry"}}, "invalid_action must be 'fallback', 'retry:K'")]:
        settings = {"level": 1, "seeds": [0], "n": 2, **kwargs}
        with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            rollouts(client, "cartpole", **settings)


def test_logprobs_are_read_as_the_server_gives_them_and_never_fail_a_reply() -> None:
    tokens = [{"token": "pu", "logprob": -1.0, "bytes": [112, 117]}, {"token": "sh", "logprob": -0.5}]
    reply = parse_reply({"choices": [
        {"message": {"content": "push"}, "logprobs": {"content": tokens}},  # OpenAI: no token ids
        {"message": {"content": "x"}, "logprobs": {"content": [{"token": "x"}]}},  # malformed: dropped
        {"message": {"content": "y"}}]}, 0.0)
    assert reply.texts == ["push", "x", "y"]
    assert reply.token_logprobs == [[{"token": "pu", "logprob": -1.0}, {"token": "sh", "logprob": -0.5}], None, None]
    assert parse_reply({"choices": [{"message": {"content": "y"}}]}, 0.0).token_logprobs is None
