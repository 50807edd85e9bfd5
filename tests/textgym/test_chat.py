"""ChatEnv: a TextGym task as a conversation (real envs, real parsers, scripted replies)."""

from __future__ import annotations

import importlib.util
import json
import time

import gymnasium as gym
import pytest

from textgym.chat import ChatEnv, act_tool, parse_strict_reply

CARTPOLE = {"type": "discrete", "names": ["push left", "push right"]}
PENDULUM = {"type": "continuous", "low": -2.0, "high": 2.0, "digits": 2}
VECTOR = {"type": "vector", "names": ["thigh", "leg"], "low": [-1.0, -1.0], "high": [1.0, 1.0], "digits": 2}
NEEDS_MUJOCO = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="needs textgym[mujoco]")


def call(arguments: object, name: str = "act", call_id: str = "c1") -> dict:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}


def play(env: ChatEnv, replies: list[str], seed: int = 0) -> tuple[list[dict], list[tuple]]:
    """The whole conversation as a caller keeps it (reset messages, each reply, the env's new turns) and each
    step's (reward, terminated, truncated, info)."""
    messages, _ = env.reset(seed=seed)
    conversation, steps = list(messages), []
    for reply in replies:
        new_messages, reward, terminated, truncated, info = env.step(reply)
        conversation += [{"role": "assistant", "content": reply}, *new_messages]
        steps.append((reward, terminated, truncated, info))
        if terminated or truncated:
            break
    return conversation, steps


def test_reset_gives_the_briefing_and_the_first_state() -> None:
    env = ChatEnv("cartpole", level=5)
    messages, info = env.reset(seed=3)
    assert [m["role"] for m in messages] == ["system", "user"]
    system = messages[0]["content"]
    assert info["game_description"] in system and info["action_description"] in system
    assert "Expert guidance: " in system and "Worked examples from an expert:" in system  # L5's knowledge
    assert system.endswith('On each step you see the current state. Choose the next action. Reply as JSON: '
                           '{"action": ...}.')
    assert messages[1] == {"role": "user", "content": f"Current state: {info['observation']}"}
    assert info["tools"] == [] and info["action_spec"] == CARTPOLE
    fewshot = ChatEnv("TextGym-CartPole-v0", level=2).reset(seed=3)[0][0]["content"]
    assert "Here are example episodes of a random policy:" in fewshot and "Expert guidance" not in fewshot


def test_same_seed_and_replies_give_identical_messages_and_rewards() -> None:
    replies = ["push left", "garbage", "Action: 2", '{"action": "push left"}', "2", "1", "2"]
    runs = [play(ChatEnv("cartpole", invalid_action="retry:1", format_penalty=0.5), replies, seed=7)
            for _ in range(2)]
    assert runs[0][0] == runs[1][0]
    assert [step[:3] for step in runs[0][1]] == [step[:3] for step in runs[1][1]]
    other_seed = play(ChatEnv("cartpole", invalid_action="retry:1", format_penalty=0.5), replies, seed=8)
    assert other_seed[0] != runs[0][0]


def test_lenient_reads_replies_as_the_text_env_does() -> None:
    env = ChatEnv("cartpole")
    text_env = gym.make("TextGym-CartPole-v0")
    env.reset(seed=1)
    text_env.reset(seed=1)
    for reply in ["I push right, action 2", "push left", "no idea", '{"action": 2}', "Action: -1"]:
        new_messages, reward, _, _, info = env.step(reply)
        observation, env_reward, *_, env_info = text_env.step(reply)
        assert (info["env_action"], info["invalid_action"], reward) == (
            env_info["action"], env_info["invalid_action"], env_reward)
        assert info["parsed_action"] == (None if env_info["invalid_action"] else env_info["action_text"])
        assert new_messages[-1]["content"].endswith(f"Current state: {observation}")
        assert info["observation"] == observation and (info["raw_obs"] == env_info["raw_obs"]).all()


@pytest.mark.parametrize(("reply", "expected"), [
    ("<action>push right</action>", "push right"),
    ("I think pushing left is risky. <action> Push  Right </action>", "push right"),
    ("<action>1</action>", "push left"),
    ('{"action": "push left"}', "push left"),
    ('{"thought": "lean", "action": 2}', "push right"),
    ('```json\n{"action": "push right"}\n```', "push right"),
    ("Action: 2", None),  # the lenient parser's forms do not count
    ("push right", None),
    ('Sure! {"action": "push right"}', None),
    ("<action>push right</action> or <action>push left</action>", None),
    ("<action>3</action>", None),
    ("<action>0</action>", None),
    ("<action>2.0</action>", None),
    ('{"action": true}', None),
    ('{"action": 2.5}', None),
    ('{"act": 2}', None),
    ("<action>__import__('os').system('echo hi')</action>", None),
    ("<action>push left", None),
    ("</action>push left<action>", None),
    ("<action>" * 30_000, None),
])
def test_strict_counts_only_a_tag_or_a_json_object(reply: str, expected: str | None) -> None:
    parsed = parse_strict_reply(reply, CARTPOLE)
    assert (json.loads(parsed)["action"] if parsed else None) == expected


@pytest.mark.parametrize("reply", ["<action>" * 12_000, "<action>" + "x" * 99_000 + "</action", "{" * 99_000,
                                   '{"action": ' * 9_000])
def test_strict_reads_long_hostile_text_in_bounded_time(reply: str) -> None:
    started = time.perf_counter()
    assert parse_strict_reply(reply, CARTPOLE) is None
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(("reply", "spec", "expected"), [
    ("<action>-0.75</action>", PENDULUM, -0.75),
    ('{"action": 1.5}', PENDULUM, 1.5),
    ("<action>nan</action>", PENDULUM, None),
    ('{"action": "fast"}', PENDULUM, None),
    ("<action>0.5 please</action>", PENDULUM, None),
    ('<action>{"thigh": 0.3, "leg": -0.1}</action>', VECTOR, {"thigh": 0.3, "leg": -0.1}),
    ('{"action": [0.3, -0.1]}', VECTOR, {"thigh": 0.3, "leg": -0.1}),
    ('{"action": {"thigh": 0.3}}', VECTOR, None),
    ('{"action": [0.3, -0.1, 0.0]}', VECTOR, None),
    ('{"action": {"thigh": 0.3, "leg": NaN}}', VECTOR, None),
])
def test_strict_numbers(reply: str, spec: dict, expected: object) -> None:
    parsed = parse_strict_reply(reply, spec)
    assert (json.loads(parsed)["action"] if parsed else None) == expected


def test_strict_env_plays_only_what_a_tag_or_json_names() -> None:
    env = ChatEnv("cartpole", action_format="strict")
    messages, _ = env.reset(seed=0)
    assert "<action>push left</action>" in messages[0]["content"]
    _, _, _, _, info = env.step("<action>push right</action>")
    assert (info["parsed_action"], info["env_action"], info["invalid_action"]) == ("2: push right", 1, False)
    _, _, _, _, info = env.step("Action: 2")  # lenient would read action 2: strict plays the fallback, flagged
    assert (info["parsed_action"], info["env_action"], info["invalid_action"]) == (None, 0, True)
    pendulum = ChatEnv("pendulum", action_format="strict")
    pendulum.reset(seed=0)
    assert pendulum.step("<action>9</action>")[4]["env_action"] == [2.0]  # clipped to the bounds, as always


def test_tool_format_needs_exactly_one_act_call() -> None:
    env = ChatEnv("cartpole", action_format="tool")
    messages, info = env.reset(seed=0)
    assert info["tools"] == [act_tool(CARTPOLE)]
    assert info["tools"][0]["function"]["parameters"]["properties"]["action"] == {"type": "string",
                                                                                  "enum": CARTPOLE["names"]}
    new_messages, _, _, _, step = env.step(call({"action": "push right"}))
    assert step["parsed_action"] == "2: push right" and not step["invalid_action"]
    assert new_messages == [{"role": "tool", "tool_call_id": "c1", "content": env.messages[-1]["content"]}]
    assert env.messages[-2]["tool_calls"][0]["id"] == "c1"
    trl_style = {"id": "c2", "function": {"name": "act", "arguments": {"action": "push left"}}}  # arguments as a dict
    assert env.step(trl_style)[4]["parsed_action"] == "1: push left"
    for reply in ['{"action": "push right"}', call({"action": "push up"}), call({"action": "push right"}, "move"),
                  call({"action": "push right", "why": "x"}), call("{not json"),
                  [call({"action": "push right"}), call({"action": "push left"}, call_id="c3")]]:
        new_messages, _, _, _, step = env.step(reply)
        assert step["invalid_action"] and step["parsed_action"] is None, reply
    assert [m["role"] for m in new_messages] == ["tool", "tool"]  # every call of the last reply is answered
    pendulum = act_tool(PENDULUM)["function"]["parameters"]["properties"]["action"]
    assert pendulum == {"type": "number", "minimum": -2.0, "maximum": 2.0}


def test_retry_answers_with_corrections_then_falls_back() -> None:
    env = ChatEnv("cartpole", action_format="strict", invalid_action="retry:2", format_penalty=0.25)
    messages, _ = env.reset(seed=0)
    state = messages[-1]["content"]
    rewards = []
    for attempt in (1, 2):
        new_messages, reward, terminated, truncated, info = env.step("push right")
        assert new_messages[0]["role"] == "user" and new_messages[0]["content"].startswith(
            "That reply named no valid action, so nothing was played.")
        assert f"({2 - attempt} tr" in new_messages[0]["content"]
        assert (reward, terminated, truncated, info["env_action"], info["invalid_action"]) == (-0.25, False, False,
                                                                                             None, True)
        rewards.append(reward)
    assert env.messages[1]["content"] == state and len(env.messages) == 6  # no env step: the same state, asked again
    new_messages, reward, *_, info = env.step("push right")  # retries spent: the fallback is played
    assert (info["env_action"], info["invalid_action"], reward) == (0, True, 0.75)
    assert new_messages[0]["content"].startswith("That reply named no valid action, so the env played its fallback")
    _, reward, *_, info = env.step("<action>2</action>")  # a new step: retries again
    assert (reward, info["invalid_action"]) == (1.0, False)
    assert env.step("x")[4]["env_action"] is None


def test_terminate_ends_the_episode_truncated() -> None:
    env = ChatEnv("cartpole", action_format="strict", invalid_action="terminate", format_penalty=1.0)
    env.reset(seed=0)
    env.step("<action>1</action>")
    new_messages, reward, terminated, truncated, info = env.step("I am not sure")
    assert (new_messages, reward, terminated, truncated) == ([], -1.0, False, True)
    assert info["step_rewards"] == [1.0, -1.0] and info["return"] == 0.0 and info["env_return"] == 1.0
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("<action>1</action>")


@pytest.mark.parametrize("history", ["all", 2, 0])
def test_history_window(history: int | str) -> None:
    env = ChatEnv("cartpole", history=history)
    conversation, _ = play(env, ["1", "2", "1", "2"])
    messages = env.messages
    if history == "all":
        assert messages == conversation
    elif history == 2:
        assert messages == [conversation[0], *conversation[-5:]]
    else:
        assert len(messages) == 2 and messages[0] == conversation[0]
        assert messages[1]["content"].startswith("Current state: ")  # self-contained: no reward of a step before
    assert messages[-1]["content"].endswith(conversation[-1]["content"].split("\n")[-1])  # the same state


def test_episode_end_gives_returns_and_normalized_return() -> None:
    env = ChatEnv("cartpole", format_penalty=0.5)
    env.reset(seed=0)
    replies = iter(["1", "oops"] * 300)
    while True:
        _, _, terminated, truncated, info = env.step(next(replies))
        if terminated or truncated:
            break
    assert info["return"] == pytest.approx(sum(info["step_rewards"]))
    assert info["env_return"] == len(info["step_rewards"]) and info["return"] == info["env_return"] - 0.5 * (
        sum(1 for r in info["step_rewards"] if r == 0.5))
    random_return, expert_return = env.reference_returns()
    assert expert_return > random_return
    assert info["normalized_return"] == pytest.approx((info["env_return"] - random_return)
                                                      / (expert_return - random_return))
    assert env.normalized(random_return) == 0.0 and env.normalized(expert_return) == pytest.approx(1.0)
    short = ChatEnv("cartpole", max_episode_steps=2)  # the anchors' episodes ran under the registered limit
    short.reset(seed=0)
    short.step("1")
    assert short.step("1")[4]["normalized_return"] is None


@NEEDS_MUJOCO
def test_no_expert_no_normalized_return() -> None:
    assert ChatEnv("hopper").reference_returns() is None
    assert ChatEnv("inverted_pendulum").translator.has_expert  # an LQR expert: anchored like CartPole above


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"env_id": "cartpol"}, "Did you mean 'cartpole'"),
    ({"env_id": "cartpole", "level": 3}, "not a training level: use level 1, 2, 4 or 5"),
    ({"env_id": "cartpole", "level": 7}, "level 7 is not a level: use level 1, 2, 4 or 5"),
    ({"env_id": "cartpole", "level": "1"}, "level '1' is not a level: use level 1, 2, 4 or 5"),
    ({"env_id": "cartpole", "action_format": "xml"}, "lenient, strict, tool"),
    ({"env_id": "cartpole", "invalid_action": "retry"}, "'fallback', 'retry:K'"),
    ({"env_id": "cartpole", "invalid_action": "retry:0"}, "'fallback', 'retry:K'"),
    ({"env_id": "cartpole", "format_penalty": -1}, "format_penalty must be a finite number >= 0"),
    ({"env_id": "cartpole", "format_penalty": float("nan")}, "format_penalty must be a finite number >= 0"),
    ({"env_id": "cartpole", "history": "some"}, "history must be 'all', an int k >= 1"),
    ({"env_id": "cartpole", "history": -1}, "history must be 'all', an int k >= 1"),
    ({"env_id": "cartpole", "history": True}, "history must be 'all', an int k >= 1"),
])
def test_bad_arguments_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        ChatEnv(**kwargs)
    assert "\n" not in str(error.value)


def test_misuse_is_reported() -> None:
    env = ChatEnv("cartpole")
    with pytest.raises(RuntimeError, match="reset"):
        env.step("1")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="reply must be the model's text"):
        env.step(42)


def test_a_step_limit_cap_is_the_one_the_briefing_states() -> None:
    """A ``max_episode_steps`` cap is enforced by gymnasium outside the text env; the briefing must state it."""
    messages, _ = ChatEnv("cartpole", level=1, max_episode_steps=20).reset(seed=0)
    assert "step limit of 20 steps" in messages[0]["content"]
    assert "500" not in messages[0]["content"]
