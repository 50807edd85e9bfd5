"""CliffWalking as text: walking along a cliff edge from the start to the goal without falling off."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.toy_text import cliffwalking

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.planning import intended_move_probability, optimal_policy
from textgym.translator import Policy, Translator

__all__ = ["CliffWalkingTranslator", "practice_grid"]

# Direction word of each move, keyed by gymnasium's action constants (steps: cliffwalking.POSITION_MAPPING).
MOVE_WORDS = {cliffwalking.UP: "up", cliffwalking.RIGHT: "right", cliffwalking.DOWN: "down",
              cliffwalking.LEFT: "left"}
# Map letters and names of the four kinds of cell.
CELL_LETTERS = {"start": "S", "goal": "G", "cliff": "C", "ground": "."}
CELL_NAMES = {"start": "the start", "goal": "the goal", "cliff": "the cliff", "ground": "open ground"}
# Every step costs the same, so the undiscounted optimum is simply the shortest safe path.
DISCOUNT = 1.0
# L5's worked examples are set on a smaller grid of the same kind, so they never reveal the real one; its
# cliff and goal lie in rows that the real 4 x 12 grid keeps free of both.
PRACTICE_SHAPE = (3, 5)


CELL_KINDS = ("start", "ground", "goal", "cliff")
# The obfuscated variant (textgym.obfuscation): a grid with a pit zone, shifts along two axes.
OBFUSCATION = ObfuscationSpec(
    objects=("axis0", "axis1", "start", "safe", "target", "pit", "shift0", "shift1", "shift2", "shift3"),
    quantities=(Quantity("{axis0} mark", "count"), Quantity("{axis1} mark", "count"),
                Quantity("cell kind", "category", ("{start}", "{safe}", "{target}", "{pit}"))),
    actions=("{shift0}", "{shift1}", "{shift2}", "{shift3}"),
    # gymnasium's UP, RIGHT, DOWN, LEFT as (quantity, raw change) of (row, column).
    action_effects=(((0, -1),), ((1, 1),), ((0, 1),), ((1, -1),)),
    giveaways=("cliff", "CliffWalking", "CliffWalking-v1", "TextGym-CliffWalking-v0", "fall", "fell", "edge",
               "walk", "left", "right", "up", "down", "row", "column"),
    templates="cliffwalking/templates/obfuscated",
)


class CliffWalkingTranslator(Translator):
    """Speaks for ``CliffWalking-v1``: the position as row and column and the cell underfoot.

    What the text gives beyond the base observation (the cell number): the grid's size (implied by the
    observation space), the rules (slipping, rewards, the step limit), the kind of cell underfoot (the start,
    open ground or the goal) and, after a step that fell off the cliff, a note saying so -- the base task
    shows a fall only as the -100 reward and the jump back to the start, and the note names the cliff cell
    only when the move could not slip (so it is the cell the move aimed at). By default (as in the original
    study) the map is hidden: no cliff cell or goal position the agent has not touched appears in any text.
    The episode's visited cells are not listed: they are in the agent's own history, as they are for a
    numeric agent. With ``map_visible=True`` the game description draws the map and each observation gives
    the way to the goal and the four neighbouring cells.

    The grid, the cliff, the goal and slipping (``is_slippery``) are read from the env; a state is the cell
    ``row * n_cols + col``. L5's worked examples are set on :func:`practice_grid`, slippery like this one.

    Args:
        env: the base env (its grid lives on ``env.unwrapped``).
        map_visible: show the map, the way to the goal and the neighbouring cells (default: hidden, as published).

    Example:
        >>> from textgym.wrapper import make_base_env
        >>> base = make_base_env("cliffwalking")
        >>> translator = CliffWalkingTranslator(base)
        >>> translator.render_observation(base.reset(seed=0)[0])
        'You are at row 3, column 0, on the start.'
    """

    name = "cliffwalking"
    action_names = tuple(f"move {MOVE_WORDS[action]}" for action in sorted(MOVE_WORDS))
    hides_map = True

    def __init__(self, env: gym.Env, map_visible: bool = False) -> None:
        super().__init__(env)
        self.options = {"map_visible": map_visible}
        self.map_visible = map_visible
        grid = self.env
        self.n_rows, self.n_cols = (int(n) for n in grid.shape)
        self.start_state = int(grid.start_state_index)
        outcomes = [outcome for by_action in grid.P.values() for options in by_action.values() for outcome in options]
        # The only transitions that end the episode are the ones onto the goal; a fall pays the lowest reward.
        goal = min(next_state for _, next_state, _, terminated in outcomes if terminated)
        self.fall_reward = min(float(reward) for _, _, reward, _ in outcomes)
        self.cells = np.full(grid.shape, "ground", dtype=object)
        self.cells[grid._cliff] = "cliff"  # gymnasium keeps the cliff mask only in this attribute
        self.cells[np.unravel_index(self.start_state, grid.shape)] = "start"
        self.goal_row, self.goal_col = divmod(int(goal), self.n_cols)
        self.cells[self.goal_row, self.goal_col] = "goal"
        self.intended_move_probability = intended_move_probability(
            grid.P, self.n_rows, self.n_cols, walkable=lambda row, col: self.cells[row, col] == "ground",
            moves={action: tuple(cliffwalking.POSITION_MAPPING[action]) for action in MOVE_WORDS})

    def template_context(self) -> dict[str, Any]:
        # The layout reaches the templates only when it is visible, so no hidden template can print it.
        layout: dict[str, Any] = {}
        if self.map_visible:
            layout = {"map_rows": ["".join(CELL_LETTERS[cell] for cell in row) for row in self.cells],
                      "goal_row": self.goal_row, "goal_col": self.goal_col}
        return {**super().template_context(), **layout, "map_visible": self.map_visible, "n_rows": self.n_rows,
                "n_cols": self.n_cols, "intended_move_probability": self.intended_move_probability,
                "sideways_probability": (1 - self.intended_move_probability) / 2}

    def describe(self, obs: Any) -> dict[str, Any]:
        row, col = divmod(int(obs), self.n_cols)
        values: dict[str, Any] = {"row": row, "col": col, "standing_on": CELL_NAMES[self.cells[row, col]],
                                  "goal_rows_down": None, "goal_cols_right": None, "neighbours": None}
        if self.map_visible:
            neighbours = []
            for action in sorted(MOVE_WORDS):
                next_row, next_col = self._moved(row, col, action, clip=False)
                inside = 0 <= next_row < self.n_rows and 0 <= next_col < self.n_cols
                neighbours.append({"direction": MOVE_WORDS[action],
                                   "cell": CELL_NAMES[self.cells[next_row, next_col]] if inside else None})
            values.update(goal_rows_down=self.goal_row - row, goal_cols_right=self.goal_col - col,
                          neighbours=neighbours)
        return values

    def step_note(self, previous_obs: Any, action: Any, reward: float, obs: Any) -> str:
        """Says when a step fell off the cliff, naming the cell when the move could not slip elsewhere."""
        if float(reward) != self.fall_reward or int(obs) != self.start_state:
            return ""
        if self.intended_move_probability < 1:
            return f"You fell off the cliff and were sent back to the start ({self.fall_reward:g})."
        row, col = self._moved(*divmod(int(previous_obs), self.n_cols), int(action), clip=True)
        return (f"You stepped onto the cliff at row {row}, column {col} and were sent back to the start "
                f"({self.fall_reward:g}).")

    def read_observation(self, text: str) -> np.ndarray:
        match = re.search(r"You are at row (\d+), column (\d+)", text)
        if match is None:
            raise ValueError(f"no position in {text!r}")
        return np.array([int(match.group(1)) * self.n_cols + int(match.group(2))])

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def obfuscation_values(self, obs: Any) -> np.ndarray:
        """Row, column and the kind of cell underfoot (an index into :data:`CELL_KINDS`)."""
        row, col = divmod(int(obs), self.n_cols)
        return np.array([row, col, CELL_KINDS.index(self.cells[row, col])])

    def observation_from_obfuscation_values(self, values: np.ndarray) -> np.ndarray:
        return np.array([int(values[0]) * self.n_cols + int(values[1])], dtype=float)

    def expert_policy(self, env: gym.Env) -> Policy:
        return optimal_policy(env, DISCOUNT)

    def teaching_env(self) -> gym.Env:
        """The practice grid, slippery exactly as this one."""
        return practice_grid(is_slippery=self.intended_move_probability < 1)

    def teaching_context(self) -> dict[str, Any]:
        n_rows, n_cols = PRACTICE_SHAPE
        return {"practice": {"n_rows": n_rows, "n_cols": n_cols, "start": (n_rows - 1, 0),
                             "cliff_row": n_rows - 1, "cliff_cols": (1, n_cols - 2), "goal": (n_rows - 1, n_cols - 1)}}

    def _moved(self, row: int, col: int, action: int, clip: bool) -> tuple[int, int]:
        d_row, d_col = cliffwalking.POSITION_MAPPING[action]
        row, col = row + int(d_row), col + int(d_col)
        if clip:
            row, col = min(max(row, 0), self.n_rows - 1), min(max(col, 0), self.n_cols - 1)
        return row, col


def practice_grid(is_slippery: bool = False) -> cliffwalking.CliffWalkingEnv:
    """A 3 x 5 cliff walk of gymnasium's own kind: start bottom left, cliff along the bottom row, goal bottom right.

    gymnasium fixes the 4 x 12 shape in ``CliffWalkingEnv.__init__``; its transition code works for any shape,
    so the model ``P`` is rebuilt with it for the smaller grid.
    """
    # Any: the shape and model of gymnasium's env are rebuilt here, past what its attribute types allow.
    grid: Any = cliffwalking.CliffWalkingEnv(is_slippery=is_slippery)
    n_rows, n_cols = grid.shape = PRACTICE_SHAPE
    grid.nS = n_rows * n_cols
    grid.start_state_index = int(np.ravel_multi_index((n_rows - 1, 0), PRACTICE_SHAPE))
    grid._cliff = np.zeros(PRACTICE_SHAPE, dtype=bool)
    grid._cliff[n_rows - 1, 1:-1] = True
    grid.P = {state: {action: grid._calculate_transition_prob(np.unravel_index(state, PRACTICE_SHAPE), action)
                      for action in MOVE_WORDS}
              for state in range(grid.nS)}
    grid.initial_state_distrib = np.zeros(grid.nS)
    grid.initial_state_distrib[grid.start_state_index] = 1.0
    grid.observation_space = spaces.Discrete(grid.nS)
    return grid
