"""CliffWalking as text: walking along a cliff edge from the start to the goal without falling off."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.toy_text import cliffwalking

from textgym.planning import intended_move_probability, optimal_policy
from textgym.translator import Policy, Translator

__all__ = ["CliffWalkingTranslator"]

# Direction word of each move, keyed by gymnasium's action constants (steps: cliffwalking.POSITION_MAPPING).
MOVE_WORDS = {cliffwalking.UP: "up", cliffwalking.RIGHT: "right", cliffwalking.DOWN: "down",
              cliffwalking.LEFT: "left"}
# Map letters and names of the four kinds of cell.
CELL_LETTERS = {"start": "S", "goal": "G", "cliff": "C", "ground": "."}
CELL_NAMES = {"start": "the start", "goal": "the goal", "cliff": "the cliff", "ground": "open ground"}
# Every step costs the same, so the undiscounted optimum is simply the shortest safe path.
DISCOUNT = 1.0


class CliffWalkingTranslator(Translator):
    """Speaks for ``CliffWalking-v1``: the position as row and column, the way to the goal and the cells around.

    The grid, the cliff, the goal and slipping (``is_slippery``) are read from the env; a state is the cell
    ``row * n_cols + col``.

    Args:
        env: the base env (its grid lives on ``env.unwrapped``).

    Example:
        >>> from textgym.wrapper import make_base_env
        >>> base = make_base_env("cliffwalking")
        >>> translator = CliffWalkingTranslator(base)
        >>> translator.render_observation(base.reset(seed=0)[0]).split(".")[0]
        'You are at row 3, column 0, on the start'
    """

    name = "cliffwalking"
    action_names = tuple(f"move {MOVE_WORDS[action]}" for action in sorted(MOVE_WORDS))

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        grid = self.env
        self.n_rows, self.n_cols = (int(n) for n in grid.shape)
        # The only transitions that end the episode are the ones onto the goal.
        goal = min(next_state for by_action in grid.P.values() for outcomes in by_action.values()
                   for _, next_state, _, terminated in outcomes if terminated)
        self.cells = np.full(grid.shape, "ground", dtype=object)
        self.cells[grid._cliff] = "cliff"  # gymnasium keeps the cliff mask only in this attribute
        self.cells[np.unravel_index(int(grid.start_state_index), grid.shape)] = "start"
        self.goal_row, self.goal_col = divmod(int(goal), self.n_cols)
        self.cells[self.goal_row, self.goal_col] = "goal"
        self.intended_move_probability = intended_move_probability(
            grid.P, self.n_rows, self.n_cols, walkable=lambda row, col: self.cells[row, col] == "ground",
            moves={action: tuple(cliffwalking.POSITION_MAPPING[action]) for action in MOVE_WORDS})

    def template_context(self) -> dict[str, Any]:
        map_rows = ["".join(CELL_LETTERS[cell] for cell in row) for row in self.cells]
        return {**super().template_context(), "n_rows": self.n_rows, "n_cols": self.n_cols,
                "map_rows": map_rows, "goal_row": self.goal_row, "goal_col": self.goal_col,
                "intended_move_probability": self.intended_move_probability,
                "sideways_probability": (1 - self.intended_move_probability) / 2}

    def describe(self, obs: Any) -> dict[str, Any]:
        row, col = divmod(int(obs), self.n_cols)
        neighbours = []
        for action in sorted(MOVE_WORDS):
            d_row, d_col = cliffwalking.POSITION_MAPPING[action]
            next_row, next_col = row + d_row, col + d_col
            inside = 0 <= next_row < self.n_rows and 0 <= next_col < self.n_cols
            neighbours.append({"direction": MOVE_WORDS[action],
                               "cell": CELL_NAMES[self.cells[next_row, next_col]] if inside else None})
        return {"row": row, "col": col, "standing_on": CELL_NAMES[self.cells[row, col]],
                "goal_rows_down": self.goal_row - row, "goal_cols_right": self.goal_col - col,
                "neighbours": neighbours}

    def read_observation(self, text: str) -> np.ndarray:
        match = re.search(r"You are at row (\d+), column (\d+)", text)
        if match is None:
            raise ValueError(f"no position in {text!r}")
        return np.array([int(match.group(1)) * self.n_cols + int(match.group(2))])

    def expert_policy(self, env: gym.Env) -> Policy:
        return optimal_policy(env, DISCOUNT)
