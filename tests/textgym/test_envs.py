"""Every text env x level passes gymnasium's checker and carries the promised info."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import textgym
from textgym.registration import ENVS, latest_base_id

ENV_IDS = [entry.text_id for entry in ENVS.values()]
LEVEL_NUMBERS = list(textgym.LEVELS)


@pytest.mark.parametrize("level", LEVEL_NUMBERS, ids=lambda n: f"L{n}")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str, level: int) -> None:
    env = gym.make(env_id, level=level)
    with warnings.catch_warnings():
        # The checker prefers env.unwrapped, but the text wrapper is exactly what is under test.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_reset_and_step_info(env_id: str) -> None:
    env = gym.make(env_id, level=5)
    obs, info = env.reset(seed=3)
    assert isinstance(obs, str) and obs and env.observation_space.contains(obs)
    for key in ("game_description", "goal_description", "action_description"):
        assert isinstance(info[key], str) and len(info[key]) > 20, key
    knowledge = info["knowledge"]
    assert knowledge["level"] == 5 and knowledge["guidance"] and knowledge["fewshot_policy"] == "expert"
    assert len(knowledge["fewshot_examples"]) == 2
    assert info["valid_actions"] and info["invalid_action"] is False
    assert "raw_obs" in info
    obs, reward, terminated, truncated, info = env.step(info["valid_actions"][-1])
    assert info["invalid_action"] is False
    obs, reward, terminated, truncated, info = env.step("I refuse to choose")
    assert info["invalid_action"] is True and isinstance(obs, str)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_keeps_base_limits(env_id: str) -> None:
    entry = textgym.env_entry(env_id)
    base = gym.spec(latest_base_id(entry.task))
    spec = gym.spec(env_id)
    assert spec.reward_threshold == base.reward_threshold
    assert spec.max_episode_steps == (base.max_episode_steps or entry.max_episode_steps)
    assert spec.max_episode_steps is not None


def test_levels_differ_in_knowledge() -> None:
    knowledge = {level: gym.make("TextGym-CartPole-v0", level=level).reset(seed=0)[1]["knowledge"]
                 for level in LEVEL_NUMBERS}
    assert knowledge[1]["fewshot_examples"] == [] and knowledge[1]["guidance"] is None
    assert "random policy" in knowledge[2]["fewshot_examples"][0]
    assert knowledge[3]["self_experience"] is True and knowledge[1]["self_experience"] is False
    assert "expert policy" in knowledge[4]["fewshot_examples"][0] and knowledge[4]["guidance"] is None
    assert knowledge[5]["guidance"] and knowledge[5]["fewshot_examples"] == knowledge[4]["fewshot_examples"]


def test_module_import_form_and_kwargs() -> None:
    env = gym.make("textgym:TextGym-CartPole-v0", max_episode_steps=3, fewshot_episodes=1, level=2)
    _, info = env.reset(seed=0)
    assert len(info["knowledge"]["fewshot_examples"]) == 1
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step("2")
        steps += 1
        assert not terminated
    assert steps == 3


@pytest.mark.parametrize("bad_level", [0, 6, "3", 2.5, None])
def test_unknown_level_lists_allowed(bad_level: object) -> None:
    with pytest.raises(ValueError, match=r"expected one of 1, 2, 3, 4, 5"):
        gym.make("TextGym-CartPole-v0", level=bad_level)


def test_unknown_env_suggests_closest() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'cartpole'"):
        textgym.env_entry("cartpol")
    with pytest.raises(gym.error.Error):
        gym.make("TextGym-CartPol-v0")


def test_bad_fewshot_kwargs() -> None:
    with pytest.raises(ValueError, match="fewshot_episodes must be an int >= 1"):
        gym.make("TextGym-CartPole-v0", fewshot_episodes=0)


def test_fewshot_trajectories_are_deterministic_and_cached(tmp_path, monkeypatch) -> None:
    from textgym import trajectories

    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    first = trajectories.fewshot_examples("cartpole", "random", episodes=2, max_steps_shown=4, seed=5)
    files = list((tmp_path / "trajectories").glob("*.json"))
    assert len(files) == 1
    files[0].unlink()
    assert trajectories.fewshot_examples("cartpole", "random", episodes=2, max_steps_shown=4, seed=5) == first
    assert first != trajectories.fewshot_examples("cartpole", "random", episodes=2, max_steps_shown=4, seed=6)
    assert first[0].count("Step ") == 4


def test_render_mode_is_passed_through() -> None:
    env = gym.make("TextGym-CartPole-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert env.render_mode == "rgb_array" and frame.ndim == 3 and frame.shape[2] == 3
