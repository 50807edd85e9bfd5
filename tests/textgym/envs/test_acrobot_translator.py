"""Acrobot's text names the right turn directions and heights, and its actions do what their names say."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.envs.classic_control.acrobot import AcrobotEnv

from textgym.envs.acrobot import AcrobotTranslator
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("acrobot")
    env.reset(seed=0)
    yield env
    env.close()


@pytest.fixture
def translator(base) -> AcrobotTranslator:
    return AcrobotTranslator(base)


def _obs(angle_1: float, angle_2: float, speed_1: float, speed_2: float) -> np.ndarray:
    cos_and_sin = [math.cos(angle_1), math.sin(angle_1), math.cos(angle_2), math.sin(angle_2)]
    return np.array([*cos_and_sin, speed_1, speed_2])


def test_straight_up_is_described_with_its_height(translator: AcrobotTranslator) -> None:
    text = translator.render_observation(_obs(math.pi / 2, math.pi / 2, 1.5, -2.0))
    assert "Link 1 is 1.571 rad counterclockwise from hanging straight down (cos 0.000, sin 1.000)" in text
    assert "rotating counterclockwise at 1.500 rad/s" in text
    assert "Link 2 is bent 1.571 rad counterclockwise relative to link 1" in text
    assert "rotating clockwise at 2.000 rad/s relative to link 1" in text
    # Link 1 horizontal, link 2 pointing straight up from its end.
    assert "The free end is 1.000 m above the pivot." in text


def test_hanging_down_is_below_the_pivot(translator: AcrobotTranslator) -> None:
    text = translator.render_observation(_obs(-0.2, 0.0, 0.0, 0.0))
    assert "0.200 rad clockwise from hanging straight down" in text
    assert "m below the pivot" in text


@pytest.mark.parametrize("action, sign", [(0, -1), (2, 1)], ids=["clockwise", "counterclockwise"])
def test_torque_turns_link_2_the_named_way(base, translator: AcrobotTranslator, action: int,
                                           sign: int) -> None:
    base.unwrapped.state = np.zeros(4)
    obs, *_ = base.step(action)
    assert np.sign(obs[5]) == sign, translator.action_names[action]
    assert np.sign(AcrobotEnv.AVAIL_TORQUE[action]) == sign


def test_descriptions_read_limits_from_the_env(translator: AcrobotTranslator) -> None:
    assert "12.6 rad/s" in translator.game_description()  # 4 pi, from the observation space
    assert "2: no torque" in translator.action_description()
    assert "-1.0, 0.0 or +1.0 N m" in translator.action_description()
    assert translator.parse_action("gibberish").action == 1


def test_link_lengths_come_from_the_env(base) -> None:
    base.unwrapped.LINK_LENGTH_1 = 1.5  # this instance only: the translator must read it there
    translator = AcrobotTranslator(base)
    assert "Link 1 (1.5 m)" in translator.game_description()
    # Straight up: the free end is one link 1 plus one link 2 above the pivot.
    assert "The free end is 2.500 m above the pivot." in translator.render_observation(_obs(math.pi, 0.0, 0.0, 0.0))
