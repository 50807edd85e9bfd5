"""FrozenLake as text: crossing a frozen lake from the start tile to the goal without falling into a hole."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.toy_text import frozen_lake

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.planning import intended_move_probability, optimal_policy
from textgym.translator import Policy, Translator

__all__ = ["FrozenLakeTranslator"]

# Direction word and (row, column) step of each move, keyed by gymnasium's action constants.
MOVES: dict[int, tuple[str, tuple[int, int]]] = {
    frozen_lake.LEFT: ("left", (0, -1)),
    frozen_lake.DOWN: ("down", (1, 0)),
    frozen_lake.RIGHT: ("right", (0, 1)),
    frozen_lake.UP: ("up", (-1, 0)),
}
# The map letters gymnasium uses, as the tile you stand on and as a tile next to you.
STANDING_ON = {"S": "on the start tile (frozen)", "F": "on frozen ice", "H": "in a hole", "G": "on the goal"}
TILE_NAMES = {"S": "the start tile", "F": "frozen ice", "H": "a hole", "G": "the goal"}
# L5's worked examples are set here, not on the lake the agent plays, whose map stays hidden. Its holes
# (row 1, column 0 and row 2, column 1) and goal (row 2, column 2) are tiles that are safe ice on
# gymnasium's 4x4 and 8x8 maps, so the practice can never be read as a leak of either.
PRACTICE_LAKE = ("SFF", "HFF", "FHG")
# Slightly below 1: success probability is what counts, and among equally safe moves the discount
# prefers the ones that get there sooner, so the step limit is rarely hit.
DISCOUNT = 0.999

TILE_KINDS = "SFHG"
# The obfuscated variant (textgym.obfuscation): a grid of cells of four invented kinds, shifts along two axes.
OBFUSCATION = ObfuscationSpec(
    objects=("axis0", "axis1", "start", "safe", "trap", "target", "shift0", "shift1", "shift2", "shift3"),
    quantities=(Quantity("{axis0} mark", "count"), Quantity("{axis1} mark", "count"),
                Quantity("cell kind", "category", ("{start}", "{safe}", "{trap}", "{target}"))),
    actions=("{shift0}", "{shift1}", "{shift2}", "{shift3}"),
    # gymnasium's LEFT, DOWN, RIGHT, UP as (quantity, raw change) of (row, column).
    action_effects=(((1, -1),), ((0, 1),), ((1, 1),), ((0, -1),)),
    giveaways=("frozen", "lake", "ice", "icy", "hole", "holes", "slippery", "slide", "slip", "FrozenLake",
               "FrozenLake-v1", "TextGym-FrozenLake-v0", "tile", "left", "right", "up", "down", "north", "south",
               "east", "west", "row", "column"),
    templates="frozenlake/templates/obfuscated",
)


class FrozenLakeTranslator(Translator):
    """Speaks for ``FrozenLake-v1``: the position as row and column and the tile underfoot.

    What the text gives beyond the base observation (the tile number): the grid's size (implied by the
    observation space), the rules (slipping, rewards, the step limit) and the kind of tile underfoot -- the
    start, frozen ice, a hole (the episode ends) or the goal (it ends with the goal reward) -- which the agent
    learns by standing on it, as the base task's reward and termination tell a numeric agent. By default
    (as in the original study) the map is hidden: no hole, goal or start position the agent has not stood
    on appears in any text, so holes and the goal must be found by exploring. The episode's visited tiles are
    not listed: they are in the agent's own history, as they are for a numeric agent. With
    ``map_visible=True`` the game description draws the map and each observation names the four
    neighbouring tiles.

    The map (``map_name``, ``desc``), slipping (``is_slippery``, ``success_rate``) and the rewards
    (``reward_schedule``) are read from the env; a state is the tile ``row * n_cols + col``. L5's worked
    examples are set on a small practice lake (:data:`PRACTICE_LAKE`) with the same slipping, so they never
    reveal the real map.

    Args:
        env: the base env (its map and model live on ``env.unwrapped``).
        map_visible: show the map and the neighbouring tiles (default: hidden, as published).

    Example:
        >>> from textgym.wrapper import make_base_env
        >>> translator = FrozenLakeTranslator(make_base_env("frozenlake", map_name="8x8"))
        >>> translator.render_observation(63)
        'You are at row 7, column 7, on the goal.'
    """

    name = "frozenlake"
    action_names = tuple(f"move {MOVES[action][0]}" for action in sorted(MOVES))
    hides_map = True

    def __init__(self, env: gym.Env, map_visible: bool = False) -> None:
        super().__init__(env)
        self.options = {"map_visible": map_visible}
        self.map_visible = map_visible
        lake = self.env
        self.map_rows: list[str] = [bytes(row).decode() for row in lake.desc]
        self.n_rows, self.n_cols = (int(n) for n in lake.desc.shape)
        self.intended_move_probability = intended_move_probability(
            lake.P, self.n_rows, self.n_cols, walkable=lambda row, col: lake.desc[row, col] in (b"S", b"F"),
            moves={action: step for action, (_, step) in MOVES.items()})
        self.rewards = _tile_rewards(lake, self.map_rows)

    def template_context(self) -> dict[str, Any]:
        sideways = (1 - self.intended_move_probability) / 2
        # The map reaches the templates only when it is visible, so no hidden template can print it.
        layout = {"map_rows": self.map_rows} if self.map_visible else {}
        return {**super().template_context(), **layout, "map_visible": self.map_visible, "n_rows": self.n_rows,
                "n_cols": self.n_cols, "tile_names": TILE_NAMES,
                "rewards": {tile: f"{reward:g}" for tile, reward in self.rewards.items()},
                "intended_move_probability": self.intended_move_probability,
                "sideways_probability": sideways}

    def describe(self, obs: Any) -> dict[str, Any]:
        row, col = divmod(int(obs), self.n_cols)
        values: dict[str, Any] = {"row": row, "col": col, "standing_on": STANDING_ON[self.map_rows[row][col]],
                                  "neighbours": None}
        if self.map_visible:
            values["neighbours"] = []
            for action in sorted(MOVES):
                direction, (d_row, d_col) = MOVES[action]
                next_row, next_col = row + d_row, col + d_col
                if 0 <= next_row < self.n_rows and 0 <= next_col < self.n_cols:
                    tile = TILE_NAMES[self.map_rows[next_row][next_col]]
                else:
                    tile = None  # the edge of the lake: the move leaves you in place
                values["neighbours"].append({"direction": direction, "tile": tile})
        return values

    def teaching_env(self) -> gym.Env:
        """The practice lake, slippery exactly as this one."""
        slippery = self.intended_move_probability < 1
        success_rate: dict[str, Any] = {"success_rate": self.intended_move_probability} if slippery else {}
        return gym.make("FrozenLake-v1", desc=list(PRACTICE_LAKE), is_slippery=slippery, **success_rate).unwrapped

    def teaching_context(self) -> dict[str, Any]:
        return {"practice": _layout(PRACTICE_LAKE)}

    def read_observation(self, text: str) -> np.ndarray:
        match = re.search(r"You are at row (\d+), column (\d+)", text)
        if match is None:
            raise ValueError(f"no position in {text!r}")
        row, col = int(match.group(1)), int(match.group(2))
        return np.array([row * self.n_cols + col])

    def expert_policy(self, env: gym.Env) -> Policy:
        return optimal_policy(env, DISCOUNT)

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def obfuscation_values(self, obs: Any) -> np.ndarray:
        """Row, column and the kind of tile underfoot (an index into :data:`TILE_KINDS`)."""
        row, col = divmod(int(obs), self.n_cols)
        return np.array([row, col, TILE_KINDS.index(self.map_rows[row][col])])

    def observation_from_obfuscation_values(self, values: np.ndarray) -> np.ndarray:
        return np.array([int(values[0]) * self.n_cols + int(values[1])], dtype=float)


def _tile_rewards(lake: Any, map_rows: list[str]) -> dict[str, float]:
    """The reward for stepping onto the goal, into a hole and onto ice (gymnasium's ``reward_schedule``).

    Read from the model ``P`` by the letter of the tile each move lands on; a kind of tile that no
    move reaches keeps gymnasium's default.
    """
    n_cols = len(map_rows[0])
    kinds = {"G": "goal", "H": "hole", "F": "ice", "S": "ice"}
    rewards = {"goal": 1.0, "hole": 0.0, "ice": 0.0}
    found: set[str] = set()
    for state, by_action in lake.P.items():
        row, col = divmod(state, n_cols)
        if map_rows[row][col] in "GH":
            continue  # moves from the goal or a hole are placeholders of a finished episode
        for outcomes in by_action.values():
            for _, next_state, reward, _ in outcomes:
                kind = kinds[map_rows[next_state // n_cols][next_state % n_cols]]
                if kind not in found:
                    rewards[kind] = float(reward)
                    found.add(kind)
    return rewards


def _layout(map_rows: tuple[str, ...]) -> dict[str, Any]:
    """A map's size and where its start, holes and goal are, as (row, column) pairs, for the templates."""
    cells = [(row, col, letter) for row, line in enumerate(map_rows) for col, letter in enumerate(line)]
    return {"n_rows": len(map_rows), "n_cols": len(map_rows[0]),
            "start": next((row, col) for row, col, letter in cells if letter == "S"),
            "holes": [(row, col) for row, col, letter in cells if letter == "H"],
            "goal": next((row, col) for row, col, letter in cells if letter == "G")}
