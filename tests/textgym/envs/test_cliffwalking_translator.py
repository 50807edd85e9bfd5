"""CliffWalking's text gives the cell, the way to the goal and what lies around; the expert walks the edge."""

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
    assert translator.render_observation(obs) == (
        "You are at row 3, column 0, on the start. The goal is 11 columns to the right. Around you: "
        "up: open ground; right: the cliff; down: the edge of the grid (you would stay in place); "
        "left: the edge of the grid (you would stay in place).")


def test_every_state_reads_back(translator: CliffWalkingTranslator) -> None:
    for state in range(int(translator.observation_space.n)):
        assert translator.read_observation(translator.render_observation(state)).tolist() == [state]


def test_map_comes_from_the_env(base, translator: CliffWalkingTranslator) -> None:
    n_rows, n_cols = base.unwrapped.shape
    text = translator.game_description()
    assert f"{n_rows} rows" in text and f"{n_cols} columns" in text
    assert "S" + "C" * (n_cols - 2) + "G" in text
    assert "on the cliff" in translator.render_observation(n_cols * (n_rows - 1) + 1)


def test_expert_walks_the_edge() -> None:
    episode = rollout("cliffwalking", "expert", seed=0)
    assert episode.episode_return == -13
    assert [step["action"] for step in episode.steps] == ["1: move up", *["2: move right"] * 11, "3: move down"]
