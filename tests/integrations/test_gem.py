"""GEM (gem-llm) runs TextGym chat envs through its own make / make_vec, sync and async, with autoreset."""

from __future__ import annotations

import gem
import numpy as np
import pytest

from textgym.chat import ChatEnv
from textgym.integrations.common import messages_text
from textgym.integrations.gem import TextGymGemEnv, gem_env_id, register

LEFT, RIGHT = '{"action": "push left"}', "<action>push right</action>"


def chat_return(seed: int, replies: list[str]) -> tuple[str, float]:
    """The first observation text and the return of ChatEnv itself, replying in turn from ``replies``."""
    env = ChatEnv("cartpole", 1)
    messages, _ = env.reset(seed=seed)
    step = 0
    while True:
        _, _, terminated, truncated, info = env.step(replies[step % len(replies)])
        step += 1
        if terminated or truncated:
            return messages_text(messages), info["return"]


def test_register_is_idempotent_and_names_every_training_level() -> None:
    ids = register(["cartpole", "frozenlake"])
    assert ids == register(["cartpole", "frozenlake"])
    assert ids == [f"textgym:{task}-L{level}" for task in ("CartPole", "FrozenLake") for level in (1, 2, 4, 5)]
    with pytest.raises(ValueError, match="L3 is a protocol across episodes"):
        register(["cartpole"], levels=(3,))


def test_make_plays_the_same_episode_as_chat_env() -> None:
    register(["cartpole"])
    env = gem.make(gem_env_id("cartpole", 1), seed=7)
    assert isinstance(env, TextGymGemEnv) and env.env_id == "textgym:CartPole-L1"
    obs, info = env.reset()  # no seed: the constructor's
    first, expected_return = chat_return(7, [LEFT, RIGHT, RIGHT])
    assert obs == first and [m["role"] for m in info["messages"]] == ["system", "user"]
    rewards, step, done = [], 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step([LEFT, RIGHT, RIGHT][step % 3])
        assert isinstance(obs, str) and obs
        rewards.append(reward)
        step += 1
        done = terminated or truncated
    assert info["return"] == expected_return == sum(rewards)
    # A second reset with no seed continues the env's random stream: another episode, not the seeded one again.
    assert env.reset()[0] != first


@pytest.mark.parametrize("async_mode", [False, True], ids=["sync", "async"])
def test_make_vec_seeds_each_env_and_autoresets(async_mode: bool) -> None:
    register(["cartpole"])
    vec = gem.make_vec([gem_env_id("cartpole", 1)] * 2, async_mode=async_mode, seed=3)
    observations, _ = vec.reset()
    assert observations == [chat_return(3, [LEFT])[0], chat_return(4, [LEFT])[0]]  # make_vec's seed + i
    lengths = [chat_return(seed, [LEFT])[1] for seed in (3, 4)]
    finished = [None, None]
    for step in range(1, int(max(lengths)) + 1):
        observations, rewards, terminated, truncated, infos = vec.step([LEFT, LEFT])
        assert np.all(rewards == 1.0)
        for i in range(2):
            if (terminated[i] or truncated[i]) and finished[i] is None:
                finished[i] = step
                # Same-step autoreset: the finished env already shows a new episode's system briefing.
                assert infos[i]["messages"][0]["role"] == "system"
    assert finished == lengths


@pytest.mark.parametrize("env_name", ["cartpole", "pendulum", "hopper"])
@pytest.mark.parametrize("action_format", ["lenient", "strict"])
def test_sample_random_action_is_always_valid(env_name: str, action_format: str) -> None:
    env = TextGymGemEnv(env_name, 1, seed=0, action_format=action_format)
    env.reset()
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(env.sample_random_action())
        assert info["invalid_action"] is False
        if terminated or truncated:
            break
