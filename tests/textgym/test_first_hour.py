"""What a gymnasium user tries in the first hour (issue 24): vector envs, integer actions, a misspelt kwarg,
the step limit in the goal text, and gymnasium's RecordVideo wrapper."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym.registration import ENVS
from textgym.wrapper import state_step_limit

CLASSIC_IDS = [entry.text_id for entry in ENVS.values() if entry.extra is None]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_envs_return_the_text(mode: str) -> None:
    single = gym.make("TextGym-CartPole-v0")
    expected = [single.reset(seed=seed)[0] for seed in (7, 8)]
    envs = gym.make_vec("TextGym-CartPole-v0", num_envs=2, vectorization_mode=mode)
    try:
        observations, _ = envs.reset(seed=7)  # gymnasium seeds env i with seed + i
        assert list(observations) == expected
        stepped, *_ = envs.step(["1", "2"])
        assert all(text.startswith("The cart is") for text in stepped)
        assert stepped[0] != observations[0]
    finally:
        envs.close()


@pytest.mark.parametrize("index", [0, 1, np.int64(0), np.int32(1)], ids=repr)
def test_an_integer_action_is_the_base_index(index: int) -> None:
    text_env = gym.make("TextGym-CartPole-v0")
    base = gym.make("CartPole-v1")
    text_env.reset(seed=3)
    base.reset(seed=3)
    _, _, _, _, info = text_env.step(index)
    raw, *_ = base.step(int(index))
    assert info["action"] == int(index) and not info["invalid_action"]
    assert info["action_text"] == ("1: push left", "2: push right")[int(index)]
    np.testing.assert_array_equal(info["raw_obs"], raw)


@pytest.mark.parametrize("index", [4, -1, np.int64(7)], ids=repr)
def test_an_integer_outside_the_action_space_is_refused(index: int) -> None:
    env = gym.make("TextGym-FrozenLake-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"base env's index, 0 to 3 \(text actions count from 1"):
        env.step(index)


def test_text_actions_still_count_from_one() -> None:
    env = gym.make("TextGym-CartPole-v0")
    env.reset(seed=0)
    assert env.step("1")[4]["action"] == 0
    assert env.step(True)[4]["invalid_action"]  # a bool is not an index: read as text, and it names no action


def test_misspelt_kwarg_is_named_in_one_line() -> None:
    with pytest.raises(ValueError) as caught:
        gym.make("TextGym-CartPole-v0", levle=3)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("unknown kwarg 'levle' for TextGym-CartPole-v0 (did you mean 'level'?)")
    assert "TextGym's own kwargs are level, render_mode, fewshot_episodes" in message
    assert "the base env CartPole-v1 takes sutton_barto_reward" in message


def test_a_misspelt_kwarg_of_a_task_that_hands_on_its_kwargs_is_named() -> None:
    # MuJoCo's tasks take **kwargs and hand them to MujocoEnv.__init__: its names count too.
    pytest.importorskip("mujoco")  # the mujoco extra (bash scripts/setup.sh installs it)
    with pytest.raises(ValueError, match=r"^unknown kwarg 'frame_skp' for TextGym-Hopper-v0 \(did you mean "
                                         r"'frame_skip'\?\): .*the base env Hopper-v5 takes xml_file, frame_skip"):
        gym.make("TextGym-Hopper-v0", frame_skp=2)
    assert gym.make("TextGym-Hopper-v0", frame_skip=2).unwrapped.frame_skip == 2


def test_base_kwargs_still_reach_the_base_env() -> None:
    env = gym.make("TextGym-FrozenLake-v0", map_name="8x8", is_slippery=False)
    assert env.unwrapped.nrow == 8


def test_level_as_a_string_says_it_must_be_an_int() -> None:
    with pytest.raises(ValueError, match=r"unknown level '3': the level must be an int, one of 1, 2, 3, 4, 5"):
        gym.make("TextGym-CartPole-v0", level="3")


@pytest.mark.parametrize("env_id", CLASSIC_IDS)
def test_goal_states_the_step_limit(env_id: str) -> None:
    limit = gym.spec(env_id).max_episode_steps
    goal = gym.make(env_id).reset(seed=0)[1]["goal_description"]
    assert f"the step limit of {limit:,} steps" in goal
    shorter = state_step_limit(gym.make(env_id, max_episode_steps=37))
    assert "the step limit of 37 steps" in shorter.reset(seed=0)[1]["goal_description"]


def test_step_limit_is_stated_for_every_env() -> None:
    # Every goal template (the extras' too, which may be absent here) names the limit through one phrase.
    envs_dir = Path(textgym.__file__).parent / "envs"
    for entry in ENVS.values():
        goal = envs_dir / entry.translator_class().template_folder() / "goal.j2"
        assert "{{ step_limit_phrase }}" in goal.read_text(), entry.name


def test_no_step_limit_says_so() -> None:
    env = state_step_limit(gym.make("TextGym-CartPole-v0", max_episode_steps=-1))
    assert "the step limit (none is set)" in env.reset(seed=0)[1]["goal_description"]


def test_record_video_writes_a_video(tmp_path) -> None:
    env = gym.make("TextGym-CartPole-v0", render_mode="rgb_array", max_episode_steps=20)
    env = gym.wrappers.RecordVideo(env, str(tmp_path), episode_trigger=lambda episode: True, disable_logger=True)
    env.reset(seed=0)
    truncated = terminated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(0)
    env.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
