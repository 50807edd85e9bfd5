"""Exact planning on a toy-text env's model: value iteration for the tabular experts.

FrozenLake, Taxi and CliffWalking publish their full transition model as
``P[state][action] = [(probability, next_state, reward, terminated), ...]``. :func:`tabular_model`
reads it into flat arrays, :func:`optimal_actions` runs value iteration on them, and
:func:`optimal_policy` wraps the result as the observation -> action expert each of those
translators uses. Because ``P`` is read from the env itself, the expert follows base-task kwargs
(``map_name``, ``is_slippery``, ``is_rainy``, ...).

Classes and functions: :class:`TabularModel`, :func:`tabular_model`, :func:`optimal_actions`, :func:`optimal_policy`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.translator import Policy

__all__ = ["TabularModel", "tabular_model", "optimal_actions", "optimal_policy", "intended_move_probability"]

# Rollouts build a fresh env per episode, so the solved policy is cached by model content
# (a digest of the transition arrays and the discount), not by env instance: equal maps share
# one solution, and a different map or slip setting gets its own.
_SOLVED: dict[str, np.ndarray] = {}


@dataclass(frozen=True)
class TabularModel:
    """The transition model as flat arrays, one entry per possible outcome of (state, action).

    Attributes:
        n_states: number of states.
        n_actions: number of actions.
        states: the state each outcome starts from.
        actions: the action each outcome follows.
        probabilities: the outcome's probability.
        next_states: the state the outcome leads to.
        rewards: the reward it pays.
        terminated: whether it ends the episode (the value after it is zero).
    """

    n_states: int
    n_actions: int
    states: np.ndarray
    actions: np.ndarray
    probabilities: np.ndarray
    next_states: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray

    def digest(self) -> str:
        """A content hash: equal models share a cached solution."""
        hasher = hashlib.sha256(f"{self.n_states},{self.n_actions}".encode())
        for array in (self.states, self.actions, self.probabilities, self.next_states, self.rewards,
                      self.terminated):
            hasher.update(np.ascontiguousarray(array).tobytes())
        return hasher.hexdigest()


def tabular_model(env: gym.Env) -> TabularModel:
    """Read ``env.unwrapped.P`` into a :class:`TabularModel`.

    Raises:
        TypeError: if the env has no discrete spaces or no model ``P``.
    """
    base: Any = env.unwrapped
    model = getattr(base, "P", None)
    if model is None or not isinstance(base.observation_space, gym.spaces.Discrete) \
            or not isinstance(base.action_space, gym.spaces.Discrete):
        raise TypeError(f"expected a toy-text env with discrete spaces and a model P, actually {base}")
    rows = [(state, action, *outcome)
            for state, by_action in model.items()
            for action, outcomes in by_action.items()
            for outcome in outcomes]
    columns = list(zip(*rows, strict=True))
    return TabularModel(
        n_states=int(base.observation_space.n),
        n_actions=int(base.action_space.n),
        states=np.asarray(columns[0], dtype=np.int64),
        actions=np.asarray(columns[1], dtype=np.int64),
        probabilities=np.asarray(columns[2], dtype=np.float64),
        next_states=np.asarray(columns[3], dtype=np.int64),
        rewards=np.asarray(columns[4], dtype=np.float64),
        terminated=np.asarray(columns[5], dtype=bool),
    )


def optimal_actions(model: TabularModel, discount: float, tolerance: float = 1e-10,
                    max_sweeps: int = 100_000) -> np.ndarray:
    """Value iteration: the greedy action of every state under the optimal values.

    Args:
        model: the env's transition model.
        discount: the discount factor in (0, 1]; 1 only where every policy ends episodes.
        tolerance: stop once no state value moves by more than this in a sweep.
        max_sweeps: a safety limit on the number of sweeps.

    Returns:
        An int array of length ``model.n_states``: the best action in each state.

    Raises:
        ValueError: for a discount outside (0, 1].
    """
    if not 0 < discount <= 1:
        raise ValueError(f"discount must be in (0, 1], actually {discount}")
    key = f"{model.digest()}-{discount}-{tolerance}"
    if key not in _SOLVED:
        continuing = np.where(model.terminated, 0.0, discount)
        values = np.zeros(model.n_states)
        for _ in range(max_sweeps):
            q_values = _q_values(model, values, continuing)
            new_values = q_values.max(axis=1)
            converged = np.max(np.abs(new_values - values)) <= tolerance
            values = new_values
            if converged:
                break
        _SOLVED[key] = _q_values(model, values, continuing).argmax(axis=1)
    return _SOLVED[key]


def optimal_policy(env: gym.Env, discount: float) -> Policy:
    """The optimal policy of ``env`` (solved once per model) as observation -> action."""
    actions = optimal_actions(tabular_model(env), discount)
    return lambda obs: int(actions[int(obs)])


def _q_values(model: TabularModel, values: np.ndarray, continuing: np.ndarray) -> np.ndarray:
    q_values = np.zeros((model.n_states, model.n_actions))
    returns = model.probabilities * (model.rewards + continuing * values[model.next_states])
    np.add.at(q_values, (model.states, model.actions), returns)
    return q_values


def intended_move_probability(transitions: dict[int, dict[int, list[tuple[Any, ...]]]], n_rows: int, n_cols: int,
                              walkable: Callable[[int, int], bool], moves: Mapping[int, Sequence[int]]) -> float:
    """How often a move on a grid world goes where it was aimed (1 on firm ground, 1/3 on gymnasium's ice).

    Read from the model ``P`` (``transitions``): for a move from a walkable cell to a walkable
    neighbour, slipping sideways can never land on the aimed-at cell, so the probability of reaching
    it is the answer. ``moves`` maps each action to its (row, column) step.
    """
    for state in range(n_rows * n_cols):
        row, col = divmod(state, n_cols)
        if not walkable(row, col):
            continue
        for action, (d_row, d_col) in sorted(moves.items()):
            next_row, next_col = row + d_row, col + d_col
            if 0 <= next_row < n_rows and 0 <= next_col < n_cols and walkable(next_row, next_col):
                target = next_row * n_cols + next_col
                return float(sum(p for p, next_state, *_ in transitions[state][action] if next_state == target))
    return 1.0
