"""FrozenLake's text gives the cell, the tile underfoot and the tiles around; the map and slip come from the env."""

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
    return FrozenLakeTranslator(base.observation_space, base.action_space)


def test_known_tile_in_words(translator: FrozenLakeTranslator) -> None:
    assert translator.render_observation(6) == (
        "You are at row 1, column 2, on frozen ice. Around you: left: a hole; down: frozen ice; "
        "right: a hole; up: frozen ice.")
    assert "in a hole" in translator.render_observation(5)


def test_every_state_reads_back(translator: FrozenLakeTranslator) -> None:
    for state in range(int(translator.observation_space.n)):
        assert translator.read_observation(translator.render_observation(state)).tolist() == [state]


def test_map_and_slip_come_from_the_env(base, translator: FrozenLakeTranslator) -> None:
    text = translator.game_description()
    for row in base.unwrapped.desc:
        assert bytes(row).decode() in text
    assert "only with probability 0.33" in text

    dry = gym.make("FrozenLake-v1", map_name="8x8", is_slippery=False)
    dry_translator = FrozenLakeTranslator(dry.observation_space, dry.action_space, env=dry)
    assert "8 rows" in dry_translator.game_description()
    assert "not slippery" in dry_translator.game_description()


def test_env_must_match_the_spaces(base) -> None:
    other = gym.make("FrozenLake-v1", map_name="8x8")
    with pytest.raises(ValueError, match="expected an env with observation space"):
        FrozenLakeTranslator(base.observation_space, base.action_space, env=other)


def test_expert_moves_away_from_holes(base, translator: FrozenLakeTranslator) -> None:
    policy = translator.expert_policy(base)
    # At the start the safe move is into the edge: sliding can only take you down or keep you in place.
    assert translator.action_names[policy(0)] == "move left"
