"""MountainCar's text says left and right correctly, and its actions push the way their names say."""

from __future__ import annotations

import numpy as np
import pytest

from textgym.envs.mountaincar import VALLEY_POSITION, MountainCarTranslator
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("mountaincar")
    env.reset(seed=0)
    yield env
    env.close()


@pytest.fixture
def translator(base) -> MountainCarTranslator:
    return MountainCarTranslator(base)


def test_right_slope_moving_left(translator: MountainCarTranslator) -> None:
    text = translator.render_observation(np.array([-0.3, -0.0125]))
    assert text.startswith("The car is at position -0.3000 m "
                           "(0.22 m right of the valley floor, 0.80 m left of the flag)")
    assert text.endswith("moving left at 0.0125 m per step.")


def test_left_hill_at_rest(translator: MountainCarTranslator) -> None:
    text = translator.render_observation(np.array([-1.0, 0.0]))
    assert "0.48 m left of the valley floor" in text and text.endswith("at rest.")
    np.testing.assert_allclose(translator.read_observation(text), [-1.0, 0.0])


@pytest.mark.parametrize("action, sign", [(0, -1), (2, 1)], ids=["left", "right"])
def test_pushes_move_the_car_the_named_way(base, action: int, sign: int) -> None:
    base.unwrapped.state = np.array([VALLEY_POSITION, 0.0])  # no pull from gravity at the floor
    obs, *_ = base.step(action)
    assert np.sign(obs[1]) == sign


def test_flag_and_fallback(translator: MountainCarTranslator) -> None:
    assert "flag at 0.50 m" in translator.goal_description()
    assert translator.parse_action("no idea").action == 1
    assert "Text that names no valid action plays 2: do not push." in translator.action_description()


def test_expert_follows_the_motion(base, translator: MountainCarTranslator) -> None:
    policy = translator.expert_policy(base)
    assert policy(np.array([-0.4, 0.01], dtype=np.float32)) == 2
    assert policy(np.array([-0.4, -0.01], dtype=np.float32)) == 0


def test_flag_comes_from_the_env(base) -> None:
    base.unwrapped.goal_position = 0.4  # this instance only: the translator must read it there
    translator = MountainCarTranslator(base)
    assert "flag at 0.40 m" in translator.goal_description()
    assert "0.70 m left of the flag" in translator.render_observation(np.array([-0.3, 0.0]))
