"""FrozenLake's text gives the cell and the tile underfoot (map hidden, or shown on request); facts from the env."""

from __future__ import annotations

import gymnasium as gym
import pytest

from textgym.envs.frozenlake import FrozenLakeTranslator
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("frozenlake")
    yield env
    env.close()


@pytest.fixture
def translator(base) -> FrozenLakeTranslator:
    return FrozenLakeTranslator(base)


def test_known_tile_in_words(base, translator: FrozenLakeTranslator) -> None:
    # By default only the tile underfoot: standing on it is how the agent learns what it is.
    assert translator.render_observation(6) == "You are at row 1, column 2, on frozen ice."
    assert translator.render_observation(5) == "You are at row 1, column 1, in a hole."
    assert translator.render_observation(15) == "You are at row 3, column 3, on the goal."
    visible = FrozenLakeTranslator(base, map_visible=True)
    assert visible.render_observation(6) == (
        "You are at row 1, column 2, on frozen ice. Around you: left: a hole; down: frozen ice; "
        "right: a hole; up: frozen ice.")
    assert visible.options == {"map_visible": True} and translator.options == {"map_visible": False}


def test_every_state_reads_back(translator: FrozenLakeTranslator) -> None:
    for state in range(int(translator.observation_space.n)):
        assert translator.read_observation(translator.render_observation(state)).tolist() == [state]


def test_map_and_slip_come_from_the_env(base, translator: FrozenLakeTranslator) -> None:
    text = FrozenLakeTranslator(base, map_visible=True).game_description()
    for row in base.unwrapped.desc:
        assert bytes(row).decode() in text
    assert "only with probability 0.33" in text
    hidden = translator.game_description()
    assert "You do not see the map" in hidden and "only with probability 0.33" in hidden
    assert not any(bytes(row).decode() in hidden for row in base.unwrapped.desc)

    dry = gym.make("FrozenLake-v1", map_name="8x8", is_slippery=False)
    dry_translator = FrozenLakeTranslator(dry)
    assert dry_translator.env is dry.unwrapped
    assert "8 rows" in dry_translator.game_description()
    assert "not slippery" in dry_translator.game_description()
    assert "not slippery" in dry_translator.guidance()


def test_success_rate_and_rewards_come_from_the_env() -> None:
    lake = gym.make("FrozenLake-v1", success_rate=0.8, reward_schedule=(10, -5, -0.1))
    translator = FrozenLakeTranslator(lake)
    assert "only with probability 0.80" in translator.game_description()
    assert "(probability 0.10 each)" in translator.game_description()
    assert "a reward of 10 when you step onto the goal, -5 when you fall into a hole and -0.1 for every other step" \
        in translator.goal_description()


def test_translator_needs_an_env(base) -> None:
    with pytest.raises(TypeError, match="expected the base gym.Env"):
        FrozenLakeTranslator(base.observation_space)


def test_expert_moves_away_from_holes(base, translator: FrozenLakeTranslator) -> None:
    policy = translator.expert_policy(base)
    # At the start the safe move is into the edge: sliding can only take you down or keep you in place.
    assert translator.action_names[policy(0)] == "move left"
