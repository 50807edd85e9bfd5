"""CliffWalking's text gives the cell and what a step touched (map hidden, or shown on request); the expert walks."""

from __future__ import annotations

import pytest

from textgym.envs.cliffwalking import CliffWalkingTranslator
from textgym.trajectories import rollout
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("cliffwalking")
    yield env
    env.close()


@pytest.fixture
def translator(base) -> CliffWalkingTranslator:
    return CliffWalkingTranslator(base)


def test_start_in_words(base, translator: CliffWalkingTranslator) -> None:
    obs, _ = base.reset(seed=0)
    assert translator.render_observation(obs) == "You are at row 3, column 0, on the start."
    assert CliffWalkingTranslator(base, map_visible=True).render_observation(obs) == (
        "You are at row 3, column 0, on the start. The goal is 11 columns to the right. Around you: "
        "up: open ground; right: the cliff; down: the edge of the grid (you would stay in place); "
        "left: the edge of the grid (you would stay in place).")


def test_a_fall_is_told_where_it_happened(base, translator: CliffWalkingTranslator) -> None:
    start, _ = base.reset(seed=0)
    right = translator.parse_action("move right").action
    obs, reward, *_ = base.step(right)
    assert (obs, reward) == (start, -100)
    assert translator.render_step(start, right, reward, obs) == (
        "You stepped onto the cliff at row 3, column 1 and were sent back to the start (-100). "
        "You are at row 3, column 0, on the start.")
    up = translator.parse_action("move up").action
    obs, reward, *_ = base.step(up)
    assert translator.render_step(start, up, reward, obs) == "You are at row 2, column 0, on open ground."
    # On slippery ground the base task does not say which way the agent slipped, and neither does the text.
    slippery = CliffWalkingTranslator(make_base_env("cliffwalking", is_slippery=True))
    assert slippery.step_note(24, right, -100, start) == \
        "You fell off the cliff and were sent back to the start (-100)."


def test_every_state_reads_back(translator: CliffWalkingTranslator) -> None:
    for state in range(int(translator.observation_space.n)):
        assert translator.read_observation(translator.render_observation(state)).tolist() == [state]


def test_map_comes_from_the_env(base, translator: CliffWalkingTranslator) -> None:
    n_rows, n_cols = base.unwrapped.shape
    text = CliffWalkingTranslator(base, map_visible=True).game_description()
    assert f"{n_rows} rows" in text and f"{n_cols} columns" in text
    assert "S" + "C" * (n_cols - 2) + "G" in text
    assert "on the cliff" in translator.render_observation(n_cols * (n_rows - 1) + 1)
    hidden = translator.game_description() + translator.goal_description() + translator.guidance()
    assert f"{n_rows} rows" in hidden and "You do not see the map" in hidden
    assert "C" * (n_cols - 2) not in hidden and f"column {n_cols - 1}" not in hidden


def test_expert_walks_the_edge() -> None:
    episode = rollout("cliffwalking", "expert", seed=0)
    assert episode.episode_return == -13
    assert [step["action"] for step in episode.steps] == ["1: move up", *["2: move right"] * 11, "3: move down"]
