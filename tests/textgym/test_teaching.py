"""L5's hand-written worked examples: realistic states, and the action the expert policy takes there."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import textgym
from textgym.registration import ENVS
from textgym.wrapper import make_base_env, make_translator

# The default task of every env, plus the variants whose teaching text changes with the dynamics.
VARIANTS = [(name, {}, None) for name in ENVS if ENVS[name].translator_class().has_teaching()] + [
    ("frozenlake", {"is_slippery": False}, None),
    ("frozenlake", {"success_rate": 0.8}, None),
    ("frozenlake", {"map_name": "8x8"}, True),
    ("cliffwalking", {"is_slippery": True}, None),
    ("cliffwalking", {}, True),
]


def _as_raw(space: spaces.Space, state):
    if isinstance(space, spaces.Box):
        return np.asarray(state, dtype=space.dtype)
    if isinstance(space, spaces.Tuple):
        return tuple(int(value) for value in state)
    return int(state)


@pytest.mark.parametrize("name, kwargs, map_visible", VARIANTS,
                         ids=[f"{n}-{','.join(f'{k}={v}' for k, v in kw.items()) or 'default'}"
                              f"{'-visible' if vis else ''}" for n, kw, vis in VARIANTS])
def test_worked_examples_act_as_the_expert(name: str, kwargs: dict, map_visible: bool | None) -> None:
    translator = make_translator(name, make_base_env(name, **kwargs), map_visible=map_visible)
    setting = translator.teaching_env()
    expert = translator.expert_policy(setting)
    examples = translator.teaching_examples()
    assert len(examples) == len(translator.teaching_states) == 2
    speaker = translator if setting is translator.env else type(translator)(setting, **translator.options)
    for state, example in zip(translator.teaching_states, examples, strict=True):
        raw = _as_raw(setting.observation_space, state)
        assert setting.observation_space.contains(raw), f"{name}: {state} is not a state of the task"
        lines = example.splitlines()
        assert f"State: {speaker.render_observation(state)}" in lines, example
        assert lines[-2].startswith("Reasoning: ") and len(lines[-2]) > 150, example
        assert lines[-1].startswith("Action: "), example
        parsed = translator.parse_action(lines[-1].removeprefix("Action: "))
        assert parsed.valid, lines[-1]
        expected = expert(raw)
        if translator.is_discrete:
            assert parsed.action == expected, f"{name}: example says {lines[-1]!r}, the expert plays " \
                                              f"{translator.action_to_text(expected)!r}\n{example}"
        else:
            assert np.max(np.abs(parsed.action - np.asarray(expected).reshape(-1))) \
                <= 0.5 * 10**-translator.action_digits + 1e-6, example


@pytest.mark.parametrize("name", ["acrobot", "pendulum"])
def test_angle_states_are_consistent(name: str) -> None:
    # cos and sin of one angle: a realistic state has cos**2 + sin**2 = 1 (to the 4 digits written).
    translator = make_translator(name, make_base_env(name))
    for state in translator.teaching_states:
        pairs = [(state[0], state[1])] + ([(state[2], state[3])] if name == "acrobot" else [])
        assert all(math.isclose(cos**2 + sin**2, 1, abs_tol=1e-3) for cos, sin in pairs), state


def test_teaching_reaches_level_5_only() -> None:
    for level in textgym.LEVELS:
        knowledge = gym.make("TextGym-Blackjack-v0", level=level).reset(seed=0)[1]["knowledge"]
        assert bool(knowledge["teaching_examples"]) is (level == 5)
        assert bool(knowledge["guidance"]) is (level == 5)
    knowledge = gym.make("TextGym-Blackjack-v0", level=5).reset(seed=0)[1]["knowledge"]
    assert knowledge["teaching_examples"][0].startswith("State: Your cards total 16, with no usable ace.")
    assert knowledge["guidance"].startswith("Play basic strategy.")


def test_practice_grids_are_not_the_real_ones() -> None:
    # The worked examples of the map-hiding envs are set on layouts of their own, slippery like the real one.
    for name in ("frozenlake", "cliffwalking"):
        for slippery in (True, False):
            translator = make_translator(name, make_base_env(name, is_slippery=slippery))
            practice = type(translator)(translator.teaching_env())
            assert (practice.n_rows, practice.n_cols) != (translator.n_rows, translator.n_cols)
            assert practice.intended_move_probability == translator.intended_move_probability
            assert "practice" in translator.teaching_examples()[0]
