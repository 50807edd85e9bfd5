"""FrozenLake and CliffWalking show what the base observation shows: the agent's position and what it touched.

By default no text (observations over whole episodes, descriptions, and every level's knowledge) names a hole,
cliff cell or goal the agent has not stood on or fallen into; ``map_visible=True`` restores the full map.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.toy_text import cliffwalking

import textgym

POSITION = re.compile(r"row (\d+), column (\d+)")
FROZENLAKE_OBSERVATION = re.compile(
    r"You are at row \d+, column \d+, (on the start tile \(frozen\)|on frozen ice|in a hole|on the goal)\.")
CLIFF_NOTE = r"(You stepped onto the cliff at row \d+, column \d+ and were sent back to the start \(-100\)\. " \
             r"|You fell off the cliff and were sent back to the start \(-100\)\. )?"
CLIFFWALKING_OBSERVATION = re.compile(
    CLIFF_NOTE + r"You are at row \d+, column \d+, on (the start|open ground|the goal)\.")
# Where a trajectory's text may name a cell: where it stood, and where it fell.
TOUCHED = re.compile(r"You are at row (\d+), column (\d+)|onto the cliff at row (\d+), column (\d+)")

CASES = [
    ("TextGym-FrozenLake-v0", {}),
    ("TextGym-FrozenLake-v0", {"map_name": "8x8", "is_slippery": False}),
    ("TextGym-CliffWalking-v0", {}),
    ("TextGym-CliffWalking-v0", {"is_slippery": True}),
]
IDS = ["frozenlake-4x4", "frozenlake-8x8-dry", "cliffwalking", "cliffwalking-slippery"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))


def hidden_cells(env: gym.Env) -> set[tuple[int, int]]:
    """Holes, cliff cells and the goal of the real layout: what the text must not give away."""
    base = env.unwrapped
    if hasattr(base, "desc"):
        return {(int(r), int(c)) for r, c in zip(*np.nonzero(np.isin(base.desc, [b"H", b"G"])), strict=True)}
    n_rows, n_cols = base.shape
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(base._cliff), strict=True)} | {(n_rows - 1, n_cols - 1)}


def named(text: str) -> set[tuple[int, int]]:
    return {(int(row), int(col)) for row, col in POSITION.findall(text)}


def touched_in(text: str) -> set[tuple[int, int]]:
    return {(int(a or c), int(b or d)) for a, b, c, d in TOUCHED.findall(text)}


def fall_cell(base: cliffwalking.CliffWalkingEnv, state: int, action: int) -> tuple[int, int]:
    """The cell a firm-ground move aims at: where a fall happened."""
    row, col = divmod(state, base.shape[1])
    d_row, d_col = cliffwalking.POSITION_MAPPING[action]
    return (min(max(row + d_row, 0), base.shape[0] - 1), min(max(col + d_col, 0), base.shape[1] - 1))


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=IDS)
def test_whole_random_episodes_name_only_touched_cells(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    base = env.unwrapped
    hidden = hidden_cells(env)
    observation_form = FROZENLAKE_OBSERVATION if "FrozenLake" in env_id else CLIFFWALKING_OBSERVATION
    n_cols = int(base.observation_space.n) // (len(base.desc) if hasattr(base, "desc") else base.shape[0])
    env.action_space.seed(0)
    rng = np.random.default_rng(0)
    falls = touched_hidden = 0
    for episode in range(20):
        obs, info = env.reset(seed=episode)
        visited = {divmod(int(info["raw_obs"]), n_cols)}
        done = False
        while not done:
            assert observation_form.fullmatch(obs), obs
            assert named(obs) & hidden <= visited, obs
            previous = int(info["raw_obs"])
            obs, reward, terminated, truncated, info = env.step(f"Action: {rng.integers(1, 5)}")
            visited.add(divmod(int(info["raw_obs"]), n_cols))
            if reward == -100:
                falls += 1
                if kwargs.get("is_slippery"):  # where it slipped is not in the base observation: no cell named
                    assert obs.startswith("You fell off the cliff and were sent back to the start (-100)."), obs
                else:  # firm ground: the fall happened where the move aimed, and the note names that cell
                    cell = fall_cell(base, previous, int(info["action"]))
                    assert cell in hidden and obs.startswith(f"You stepped onto the cliff at row {cell[0]}, "
                                                             f"column {cell[1]} and"), obs
                    visited.add(cell)
            touched_hidden += bool(named(obs) & hidden)
            done = terminated or truncated
        assert named(obs) & hidden <= visited, obs
    # The episodes did touch holes, the cliff or the goal, so the check above was exercised.
    assert touched_hidden > 0
    assert falls > 0 or "FrozenLake" in env_id


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=IDS)
@pytest.mark.parametrize("level", list(textgym.LEVELS), ids=lambda n: f"L{n}")
def test_descriptions_and_knowledge_hide_the_map(env_id: str, kwargs: dict, level: int) -> None:
    env = gym.make(env_id, level=level, **kwargs)
    hidden = hidden_cells(env)
    _, info = env.reset(seed=0)
    knowledge = info["knowledge"]
    fixed_texts = [info["game_description"], info["goal_description"], info["action_description"],
                   knowledge["guidance"] or "", *knowledge["teaching_examples"]]
    for text in fixed_texts:
        assert not named(text) & hidden, text
        # No map drawing, no neighbours, no way to the goal.
        assert not re.search(r"^[SFHGC.]{3,}$", text, re.MULTILINE), text
        assert "Around you" not in text and not re.search(r"The goal is \d+ (row|column)", text), text
    for example in knowledge["fewshot_examples"]:
        # A trajectory names a hole, cliff cell or goal only where it stood or fell.
        assert named(example) & hidden <= touched_in(example), example
    assert len(knowledge["fewshot_examples"]) == (5 if level in (2, 4) else 0)
    if level == 4:  # the expert's trajectories reach the goal, so they name it where they stood on it
        goal = max(hidden)
        assert all(f"End: You are at row {goal[0]}, column {goal[1]}, on the goal." in example
                   for example in knowledge["fewshot_examples"])


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=IDS)
def test_map_visible_shows_the_map(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, level=5, map_visible=True, **kwargs)
    hidden = hidden_cells(env)
    obs, info = env.reset(seed=0)
    base = env.unwrapped
    if "FrozenLake" in env_id:
        rows = [bytes(row).decode() for row in base.desc]
        assert [line for line in info["game_description"].splitlines() if re.fullmatch(r"[SFHG]+", line)] == rows
        assert "Reach the goal tile G." in info["goal_description"]
        assert obs.startswith("You are at row 0, column 0, on the start tile (frozen). Around you: left: the edge")
    else:
        assert "SCCCCCCCCCCG" in info["game_description"]
        assert f"Reach the goal at row {max(hidden)[0]}, column {max(hidden)[1]}" in info["goal_description"]
        assert "The goal is 11 columns to the right. Around you: up: open ground; right: the cliff;" in obs
        assert named(info["goal_description"]) & hidden
    # The teaching, too, speaks the full-map text: its states name their neighbours.
    assert all("Around you" in example for example in info["knowledge"]["teaching_examples"])
    hidden_default = gym.make(env_id, **kwargs).reset(seed=0)[0]
    assert "Around you" not in hidden_default and obs.startswith(hidden_default[:-1])


@pytest.mark.parametrize("env_id, kwargs", CASES, ids=IDS)
def test_visible_and_hidden_trajectories_are_cached_apart(env_id: str, kwargs: dict) -> None:
    hidden = gym.make(env_id, level=4, **kwargs).reset(seed=0)[1]["knowledge"]
    visible = gym.make(env_id, level=4, map_visible=True, **kwargs).reset(seed=0)[1]["knowledge"]
    assert hidden["fewshot_returns"] == visible["fewshot_returns"]  # the same episodes ...
    assert all("Around you" in example for example in visible["fewshot_examples"])  # ... in the other text
    assert not any("Around you" in example for example in hidden["fewshot_examples"])


OTHER_ENVS = [entry.text_id for name, entry in textgym.ENVS.items() if name not in ("frozenlake", "cliffwalking")]


@pytest.mark.parametrize("env_id", OTHER_ENVS)
def test_other_envs_read_back_from_observation_alone(env_id: str) -> None:
    # The other texts give the base observation (read back exactly; for Atari, the named RAM quantities) and what
    # follows from it and the task's constants; their translators hide nothing, so they take no map_visible.
    env = gym.make(env_id)
    translator = env.get_wrapper_attr("translator")
    assert not translator.hides_map and translator.options == {}
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(np.asarray(translator.read_observation(obs), dtype=float).reshape(-1),
                               translator.observation_values(info["raw_obs"]),
                               atol=translator.observation_precision + 1e-9)
