"""Taxi's text decodes the state into the taxi's cell, the passenger and the destination, walls included."""

from __future__ import annotations

import numpy as np
import pytest

from textgym.envs.taxi import TaxiTranslator
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("taxi")
    yield env
    env.close()


@pytest.fixture
def translator(base) -> TaxiTranslator:
    return TaxiTranslator(base)


def test_known_state_in_words(base, translator: TaxiTranslator) -> None:
    yellow, blue = 2, 3  # indices into TaxiEnv.locs
    text = translator.render_observation(base.unwrapped.encode(3, 0, blue, yellow))
    assert text == ("The taxi is at row 3, column 0. The passenger is at stand B (blue, row 4, column 3). "
                    "The passenger wants to go to stand Y (yellow, row 4, column 0). From here the taxi can move "
                    "south and north; a wall or the edge of the city blocks east and west.")
    in_taxi = len(base.unwrapped.locs)
    assert "The passenger is in the taxi." in translator.render_observation(base.unwrapped.encode(2, 2, in_taxi, 0))


def test_every_state_reads_back(translator: TaxiTranslator) -> None:
    # Includes the unreachable ones (passenger already at the destination) that hypothesis may draw.
    for state in range(int(translator.observation_space.n)):
        assert translator.read_observation(translator.render_observation(state)).tolist() == [state]


def test_game_description_shows_map_and_walls(base, translator: TaxiTranslator) -> None:
    text = translator.game_description()
    for line in base.unwrapped.desc:
        assert bytes(line).decode() in text
    assert "in row 0 between columns 1 and 2" in text
    assert "R (red) at row 0, column 0" in text


@pytest.mark.parametrize("action", range(4))
def test_moves_go_the_named_way(base, translator: TaxiTranslator, action: int) -> None:
    start = base.unwrapped.encode(2, 2, 0, 1)
    (_, next_state, _, _), = base.unwrapped.P[start][action]
    row, col, *_ = base.unwrapped.decode(next_state)
    step = {"move south": (3, 2), "move north": (1, 2), "move east": (2, 3), "move west": (2, 1)}
    assert (row, col) == step[translator.action_names[action]]


def test_expert_is_cached_and_delivers(base, translator: TaxiTranslator) -> None:
    policy = translator.expert_policy(base)
    obs, _ = base.reset(seed=0)
    total, done = 0.0, False
    while not done:
        obs, reward, done, _, _ = base.step(policy(obs))
        total += float(reward)
    assert total > 0
    assert np.array_equal([policy(s) for s in range(500)],
                          [translator.expert_policy(make_base_env("taxi"))(s) for s in range(500)])
