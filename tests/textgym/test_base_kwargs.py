"""The text follows base-task kwargs: ``gym.make("TextGym-...", **kwargs)`` describes the task they make."""

from __future__ import annotations

import re

import gymnasium as gym
import pytest

import textgym
from textgym import trajectories
from textgym.trajectories import rollout

EIGHT_BY_EIGHT = ["SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG"]
DRY_8X8 = {"map_name": "8x8", "is_slippery": False}
SHORTEST_8X8_PATH = 14  # 7 moves down and 7 right, around the holes


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    # Few-shot rollouts for unusual kwargs belong to this test run only.
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))


def test_frozenlake_8x8_map_is_described() -> None:
    hidden = gym.make("TextGym-FrozenLake-v0", map_name="8x8").reset(seed=0)[1]["game_description"]
    assert "a grid of 8 rows (numbered 0 to 7 from top to bottom) and 8 columns (numbered 0 to 7" in hidden
    assert not any(row in hidden for row in EIGHT_BY_EIGHT)
    env = gym.make("TextGym-FrozenLake-v0", map_name="8x8", map_visible=True)
    obs, info = env.reset(seed=0)
    text = info["game_description"]
    assert "a grid of 8 rows (numbered 0 to 7 from top to bottom) and 8 columns (numbered 0 to 7" in text
    assert [line for line in text.splitlines() if re.fullmatch(r"[SFHG]+", line)] == EIGHT_BY_EIGHT
    assert obs.startswith("You are at row 0, column 0, on the start tile")
    translator = env.get_wrapper_attr("translator")
    assert translator.render_observation(63).startswith("You are at row 7, column 7, on the goal")
    for state in range(64):
        assert translator.read_observation(translator.render_observation(state)).tolist() == [state]


def test_is_slippery_changes_what_the_text_says_about_slipping() -> None:
    slippery = gym.make("TextGym-FrozenLake-v0", level=5).reset(seed=0)[1]
    dry = gym.make("TextGym-FrozenLake-v0", level=5, is_slippery=False).reset(seed=0)[1]
    assert "The ice is slippery: a move goes in the chosen direction only with probability 0.33" \
        in slippery["game_description"]
    assert "The ice is not slippery: every move goes in the chosen direction." in dry["game_description"]
    assert "is slippery" not in dry["game_description"]
    assert "The ice is not slippery, so every move goes exactly where you aim it" in dry["knowledge"]["guidance"]
    assert "On slippery ice" in slippery["knowledge"]["guidance"]


def test_l4_expert_reaches_the_goal_on_a_dry_8x8_map() -> None:
    env = gym.make("TextGym-FrozenLake-v0", level=4, **DRY_8X8)
    obs, info = env.reset(seed=0)
    # The demonstrations are played on the same 8x8 dry lake, and reach its goal by the shortest path.
    examples = info["knowledge"]["fewshot_examples"]
    assert examples
    for example in examples:
        assert f"return 1.00 after {SHORTEST_8X8_PATH} steps" in example
        assert re.search(r"Step 14: You are at row 7, column 6, on frozen ice\.\n"
                         r"Action: 3: move right -> reward 1\.00, episode ends\.\nEnd: You are at row 7, column 7, "
                         r"on the goal\.$", example), example

    # The expert also plays the text env itself through its action text.
    expert = env.get_wrapper_attr("translator").expert_policy(env.unwrapped)
    total, done, steps = 0.0, False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.get_wrapper_attr("translator").action_to_text(
            expert(info["raw_obs"])))
        assert not info["invalid_action"]
        total, done, steps = total + float(reward), terminated or truncated, steps + 1
    assert total == 1.0 and steps == SHORTEST_8X8_PATH
    assert obs.startswith("You are at row 7, column 7, on the goal")


def test_rollouts_and_their_cache_follow_base_kwargs() -> None:
    episode = rollout("frozenlake", "expert", seed=0, base_kwargs=DRY_8X8)
    assert (episode.episode_return, episode.length) == (1.0, SHORTEST_8X8_PATH)
    default = trajectories.fewshot_trajectories("frozenlake", "expert", episodes=1, token_budget=200)
    dry = trajectories.fewshot_trajectories("frozenlake", "expert", episodes=1, token_budget=200, base_kwargs=DRY_8X8)
    assert default != dry and dry.lengths == [SHORTEST_8X8_PATH]
    assert len(list(trajectories.cache_dir().glob("frozenlake-expert-*.json"))) == 2


# One set of kwargs per text env (Acrobot takes none), and a phrase only the text of that task contains.
KWARG_CASES = [
    ("TextGym-CartPole-v0", {"sutton_barto_reward": True}, "goal_description",
     "a reward of 0 for every step the pole stays up and -1 when it falls"),
    ("TextGym-MountainCar-v0", {"goal_velocity": 0.01}, "goal_description",
     "with a velocity of at least 0.0100 m per step"),
    ("TextGym-MountainCarContinuous-v0", {"goal_velocity": 0.01}, "goal_description",
     "with a velocity of at least 0.0100 m per step"),
    ("TextGym-Pendulum-v0", {"g": 2.0}, "game_description",
     "Gravity (2.0 m per second squared) pulls the pendulum down; the motor is strong enough to lift it"),
    ("TextGym-LunarLander-v0", {"enable_wind": True, "gravity": -5.0}, "game_description",
     "falls under gravity (5.0 in the game's units). Wind pushes the lander sideways"),
    ("TextGym-Blackjack-v0", {"natural": True, "sab": False}, "goal_description", "pays +1.5"),
    ("TextGym-Taxi-v0", {"is_rainy": True, "fickle_passenger": True}, "game_description",
     "It is raining: a move goes in the chosen direction only with probability 0.80"),
    ("TextGym-CliffWalking-v0", {"is_slippery": True}, "game_description",
     "The ground is slippery: a move goes in the chosen direction only with probability 0.33"),
    ("TextGym-FrozenLake-v0", {"reward_schedule": (10, -5, -0.1)}, "goal_description",
     "a reward of 10 when you step onto the goal, -5 when you fall into a hole"),
    ("TextGym-Breakout-v0", {"repeat_action_probability": 0.0}, "action_description",
     "Each action is held for 4 frames (one step). Answer"),
    ("TextGym-InvertedDoublePendulum-v0", {"healthy_reward": 5.0}, "goal_description",
     "Each step you get 5.0 for staying up"),
    ("TextGym-Reacher-v0", {"reward_control_weight": 0.5}, "goal_description",
     "minus 0.5 times the sum of the squared actions"),
    ("TextGym-Pong-v0", {"frameskip": 2}, "action_description", "Each action is held for 2 frames (one step)"),
    ("TextGym-Freeway-v0", {"frameskip": 3, "repeat_action_probability": 0.0}, "action_description",
     "Each action is held for 3 frames (one step). Answer"),
    ("TextGym-InvertedPendulum-v0", {"frame_skip": 4}, "game_description", "One step lasts 0.080 s"),
    ("TextGym-Pusher-v0", {"reward_near_weight": 0.2}, "goal_description",
     "minus 0.2 times the fingertip's distance to the object"),
    ("TextGym-Swimmer-v0", {"forward_reward_weight": 2.0}, "goal_description",
     "you get 2.0 times the front tip's forward speed"),
    ("TextGym-Hopper-v0", {"healthy_reward": 3.0}, "goal_description", "you get 3.0 for staying healthy"),
    ("TextGym-Walker2d-v0", {"healthy_reward": 2.0}, "goal_description", "you get 2.0 for staying healthy"),
    ("TextGym-HalfCheetah-v0", {"ctrl_cost_weight": 0.5}, "goal_description",
     "minus 0.5 times the sum of the squared actions"),
    ("TextGym-Ant-v0", {"contact_cost_weight": 0.001}, "goal_description",
     "minus 0.001 times the sum of the squared (clipped) contact forces"),
]


@pytest.mark.parametrize("env_id, kwargs, part, phrase", KWARG_CASES,
                         ids=[f"{case[0]}-{','.join(case[1])}" for case in KWARG_CASES])
def test_base_kwargs_reach_the_text(env_id: str, kwargs: dict, part: str, phrase: str) -> None:
    default = gym.make(env_id).reset(seed=0)[1]
    # L4's expert trajectories are played on the changed task; without an expert (most MuJoCo tasks), L2's.
    level = 4 if textgym.env_entry(env_id).translator_class().has_controller else 2
    env = gym.make(env_id, level=level, fewshot_episodes=1, **kwargs)
    obs, info = env.reset(seed=0)
    assert phrase in info[part] and phrase not in default[part]
    assert env.observation_space.contains(obs) and info["knowledge"]["fewshot_examples"]
    obs, _, _, _, info = env.step(info["valid_actions"][0])
    assert not info["invalid_action"] and env.observation_space.contains(obs)
    env.close()
