"""Every text env x level passes gymnasium's checker and carries the promised info."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import textgym
from textgym.registration import ENVS, latest_base_id
from textgym.wrapper import MAX_ACTION_CHARS, TEXT_CHARSET, TextSpace

ENV_IDS = [entry.text_id for entry in ENVS.values()]
LEVEL_NUMBERS = list(textgym.LEVELS)
# A whole Atari game runs thousands of emulated steps: one few-shot episode keeps the L2/L4 checks short.
CHECK_KWARGS = {entry.text_id: {"fewshot_episodes": 1} for entry in ENVS.values() if entry.extra == "atari"}
# Where TextGym has no expert (most MuJoCo tasks), L4 needs a policy file and L5 does not exist: making them fails
# with a message that says so (tests/textgym/envs/test_mujoco.py checks L4 with a trained policy file).
MISSING_KNOWLEDGE = ({(entry.text_id, 4) for entry in ENVS.values() if not entry.translator_class().has_controller}
                     | {(entry.text_id, 5) for entry in ENVS.values() if not entry.translator_class().has_teaching()})
TEACHING_IDS = [entry.text_id for entry in ENVS.values() if entry.translator_class().has_teaching()]


@pytest.mark.parametrize("level", LEVEL_NUMBERS, ids=lambda n: f"L{n}")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str, level: int) -> None:
    if (env_id, level) in MISSING_KNOWLEDGE:
        with pytest.raises(ValueError, match="textgym-ppo" if level == 4 else "needs hand-written teaching"):
            gym.make(env_id, level=level)
        return
    env = gym.make(env_id, level=level, **CHECK_KWARGS.get(env_id, {}))
    with warnings.catch_warnings():
        # The checker prefers env.unwrapped, but the text wrapper is exactly what is under test.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", TEACHING_IDS)
def test_reset_and_step_info(env_id: str) -> None:
    env = gym.make(env_id, level=5)
    obs, info = env.reset(seed=3)
    assert isinstance(obs, str) and obs and env.observation_space.contains(obs)
    for key in ("game_description", "goal_description", "action_description"):
        assert isinstance(info[key], str) and len(info[key]) > 20, key
    knowledge = info["knowledge"]
    assert knowledge["level"] == 5 and knowledge["guidance"] and knowledge["fewshot_policy"] is None
    assert knowledge["fewshot_examples"] == [] and len(knowledge["teaching_examples"]) == 2
    assert not knowledge["guidance"].startswith("Expert guidance")  # the agents' prompt adds its own heading
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
    assert set(knowledge[1]) == {"level", "level_summary", "fewshot_policy", "fewshot_examples", "fewshot_returns",
                                 "fewshot_lengths", "self_experience", "guidance", "teaching_examples"}
    assert knowledge[1]["fewshot_examples"] == [] and knowledge[1]["guidance"] is None
    assert knowledge[1]["teaching_examples"] == []
    # L2/L4: five whole trajectories with their returns and lengths; L3 alone learns from its own episodes.
    for level, policy in ((2, "random"), (4, "expert")):
        assert knowledge[level]["fewshot_policy"] == policy
        assert len(knowledge[level]["fewshot_examples"]) == 5
        assert all(f"({policy} policy)" in example for example in knowledge[level]["fewshot_examples"])
        assert len(knowledge[level]["fewshot_returns"]) == len(knowledge[level]["fewshot_lengths"]) == 5
    assert knowledge[4]["fewshot_returns"] == [500.0] * 5  # the expert balances for the whole step limit
    assert [spec.self_experience for spec in textgym.LEVELS.values()] == [False, False, True, False, False]
    assert all(knowledge[level]["self_experience"] is (level == 3) for level in LEVEL_NUMBERS)
    assert knowledge[3]["fewshot_examples"] == [] and knowledge[3]["guidance"] is None
    assert knowledge[4]["guidance"] is None and knowledge[4]["teaching_examples"] == []
    # L5 is L1 plus hand-written teaching, without trajectories unless asked for.
    assert knowledge[5]["guidance"] and len(knowledge[5]["teaching_examples"]) == 2
    assert knowledge[5]["fewshot_examples"] == [] and knowledge[5]["fewshot_policy"] is None
    with_trajectories = gym.make("TextGym-CartPole-v0", level=5, teaching_with_trajectories=True).reset(seed=0)[1]
    assert with_trajectories["knowledge"]["fewshot_examples"] == knowledge[4]["fewshot_examples"]
    assert with_trajectories["knowledge"]["fewshot_policy"] == "expert"
    assert with_trajectories["knowledge"]["teaching_examples"] == knowledge[5]["teaching_examples"]
    # The option belongs to teaching: at other levels it changes nothing.
    assert gym.make("TextGym-CartPole-v0", level=2, teaching_with_trajectories=True).reset(seed=0)[1][
        "knowledge"] == knowledge[2]


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
    with pytest.raises(ValueError, match=r"the level must be an int, one of 1, 2, 3, 4, 5"):
        gym.make("TextGym-CartPole-v0", level=bad_level)


def test_unknown_env_suggests_closest() -> None:
    with pytest.raises(ValueError, match=r"Did you mean 'cartpole'"):
        textgym.env_entry("cartpol")
    with pytest.raises(gym.error.Error):
        gym.make("TextGym-CartPol-v0")


@pytest.mark.parametrize("kwargs, message", [
    ({"fewshot_episodes": 0}, "fewshot_episodes must be an int >= 1, actually 0"),
    ({"fewshot_episodes": True}, "fewshot_episodes must be an int >= 1, actually True"),
    ({"fewshot_token_budget": 50}, "fewshot_token_budget must be an int >= 100, actually 50"),
    ({"fewshot_token_budget": "lots"}, "fewshot_token_budget must be an int >= 100, actually 'lots'"),
    ({"fewshot_seed": -1}, "fewshot_seed must be an int >= 0, actually -1"),
    ({"teaching_with_trajectories": "yes"}, "teaching_with_trajectories must be true or false, actually 'yes'"),
    ({"fewshot_max_steps": 8}, "fewshot_max_steps was replaced by fewshot_token_budget"),
    ({"map_visible": True}, "map_visible applies only to cliffwalking, frozenlake: the cartpole text hides no map"),
])
def test_bad_knowledge_kwargs(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        gym.make("TextGym-CartPole-v0", **kwargs)


def test_map_visible_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match=re.escape("map_visible must be true or false, actually 'no'")):
        gym.make("TextGym-FrozenLake-v0", map_visible="no")


def test_render_mode_is_passed_through() -> None:
    env = gym.make("TextGym-CartPole-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert env.render_mode == "rgb_array" and frame.ndim == 3 and frame.shape[2] == 3


def test_each_env_has_text_spaces_of_its_own_that_sample_as_a_fresh_one() -> None:
    first, second = (gym.make("TextGym-CartPole-v0") for _ in range(2))
    assert first.action_space is not second.action_space
    assert first.observation_space is not second.observation_space
    fresh = TextSpace(MAX_ACTION_CHARS, charset=TEXT_CHARSET)
    fresh.seed(3)
    first.action_space.seed(3)
    second.action_space.seed(4)  # seeding one env's space leaves the other's draws alone
    assert [first.action_space.sample() for _ in range(3)] == [fresh.sample() for _ in range(3)]
    second.action_space.seed(3)
    fresh.seed(3)
    assert second.action_space.sample() == fresh.sample()
    assert first.action_space == fresh and first.observation_space.contains("Action: 1\n")
