"""Taxi as text: picking up a passenger at one stand and dropping them off at another."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.planning import optimal_policy
from textgym.translator import Policy, Translator

__all__ = ["TaxiTranslator"]

# Action indices as TaxiEnv documents them: 0-3 move, 4 pick up, 5 drop off.
MOVE_DIRECTIONS = ("south", "north", "east", "west")
# Colour of each stand letter on gymnasium's map (the docs name them Red, Green, Yellow, Blue).
STAND_COLOURS = {"R": "red", "G": "green", "Y": "yellow", "B": "blue"}
WALL = b"|"
# Every step costs the same and the model is deterministic: the undiscounted optimum is the fastest delivery.
DISCOUNT = 1.0


# The obfuscated variant (textgym.obfuscation): carry a token between posts on a walled grid.
OBFUSCATION = ObfuscationSpec(
    objects=("axis0", "axis1", "token", "post0", "post1", "post2", "post3", "shift0", "shift1", "shift2", "shift3",
             "take", "leave"),
    quantities=(Quantity("{axis0} mark", "count"), Quantity("{axis1} mark", "count"),
                Quantity("{token} place", "category", ("{post0}", "{post1}", "{post2}", "{post3}", "carried")),
                Quantity("{token} target", "category", ("{post0}", "{post1}", "{post2}", "{post3}"))),
    actions=("{shift0}", "{shift1}", "{shift2}", "{shift3}", "{take}", "{leave}"),
    # gymnasium's south, north, east, west as (quantity, raw change) of (row, column); pick-up and drop-off.
    action_effects=(((0, 1),), ((0, -1),), ((1, 1),), ((1, -1),), (), ()),
    giveaways=("taxi", "Taxi-v3", "Taxi-v4", "TextGym-Taxi-v0", "passenger", "passengers", "cab", "drive",
               "city", "street", "red", "green", "yellow", "blue", "north", "south", "east", "west", "pick",
               "drop", "row", "column", "rain", "rainy"),
    templates="taxi/templates/obfuscated",
)


class TaxiTranslator(Translator):
    """Speaks for ``Taxi-v4``: the taxi's row and column, where the passenger is and where they go.

    The state number is decoded with the env's own ``decode`` into taxi row, taxi column, passenger
    location (a stand, or inside the taxi) and destination stand. The map, the walls, rain
    (``is_rainy``) and a fickle passenger (``fickle_passenger``) are read from the env.

    Args:
        env: the base env (its map and decoder live on ``env.unwrapped``).

    Example:
        >>> from textgym.wrapper import make_base_env
        >>> base = make_base_env("taxi")
        >>> translator = TaxiTranslator(base)
        >>> state = base.unwrapped.encode(2, 1, 4, 1)
        >>> print(translator.render_observation(state).split(". ")[1])
        The passenger is in the taxi
    """

    name = "taxi"
    action_names = (*(f"move {direction}" for direction in MOVE_DIRECTIONS),
                    "pick up the passenger", "drop off the passenger")

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.taxi = self.env
        self.n_rows, self.n_cols = self.taxi.max_row + 1, self.taxi.max_col + 1
        # On the map, cell (row, col) is character 2 * col + 1 of line row + 1; walls sit between cells.
        self.stand_letters = [self.taxi.desc[row + 1, 2 * col + 1].decode() for row, col in self.taxi.locs]
        self.stands = [{"letter": letter, "colour": STAND_COLOURS.get(letter, letter), "row": row, "col": col}
                       for letter, (row, col) in zip(self.stand_letters, self.taxi.locs, strict=True)]
        self.intended_move_probability = _intended_move_probability(self.taxi)

    def template_context(self) -> dict[str, Any]:
        walls = [{"row": row, "left_col": col} for row in range(self.n_rows) for col in range(self.n_cols - 1)
                 if self.taxi.desc[row + 1, 2 * col + 2] == WALL]
        return {**super().template_context(), "n_rows": self.n_rows, "n_cols": self.n_cols,
                "map_lines": [bytes(line).decode() for line in self.taxi.desc], "stands": self.stands,
                "walls": walls, "intended_move_probability": self.intended_move_probability,
                "sideways_probability": (1 - self.intended_move_probability) / 2,
                "fickle_passenger": bool(self.taxi.fickle_passenger),
                "fickle_probability": float(self.taxi.fickle_probability)}

    def describe(self, obs: Any) -> dict[str, Any]:
        taxi_row, taxi_col, passenger_index, destination_index = self.taxi.decode(int(obs))
        in_taxi = passenger_index == len(self.stands)
        movable = self.taxi.action_mask(int(obs))[:len(MOVE_DIRECTIONS)]
        return {
            "taxi_row": int(taxi_row), "taxi_col": int(taxi_col),
            "passenger_stand": None if in_taxi else self.stands[passenger_index],
            "destination": self.stands[destination_index],
            "open_moves": [d for d, ok in zip(MOVE_DIRECTIONS, movable, strict=True) if ok],
            "blocked_moves": [d for d, ok in zip(MOVE_DIRECTIONS, movable, strict=True) if not ok],
        }

    def read_observation(self, text: str) -> np.ndarray:
        taxi = re.search(r"The taxi is at row (\d+), column (\d+)", text)
        passenger = re.search(r"The passenger is (in the taxi|at stand (\w))", text)
        destination = re.search(r"wants to go to stand (\w)", text)
        if taxi is None or passenger is None or destination is None:
            raise ValueError(f"no taxi, passenger or destination in {text!r}")
        if passenger.group(2) is None:
            passenger_index = len(self.stands)
        else:
            passenger_index = self.stand_letters.index(passenger.group(2))
        destination_index = self.stand_letters.index(destination.group(1))
        return np.array([self.taxi.encode(int(taxi.group(1)), int(taxi.group(2)), passenger_index,
                                          destination_index)])

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def obfuscation_values(self, obs: Any) -> np.ndarray:
        """Taxi row, taxi column, passenger location and destination, as the env's ``decode`` gives them."""
        return np.array(list(self.taxi.decode(int(obs))))

    def observation_from_obfuscation_values(self, values: np.ndarray) -> np.ndarray:
        return np.array([self.taxi.encode(*(int(value) for value in values))], dtype=float)

    def expert_policy(self, env: gym.Env) -> Policy:
        return optimal_policy(env, DISCOUNT)


def _intended_move_probability(taxi: Any) -> float:
    """How often a move goes where it was aimed: 1 in dry weather, ``rainy_probability`` when it rains.

    ``is_rainy`` is not kept on the env, but it shows in the model ``P``: in the rain every move has
    three outcomes (ahead and the two sides), in dry weather one.
    """
    raining = any(len(by_action[action]) > 1 for by_action in taxi.P.values()
                  for action in range(len(MOVE_DIRECTIONS)))
    return float(taxi.rainy_probability) if raining else 1.0
