"""MountainCarContinuous's text says left and right correctly and describes the force it takes."""

from __future__ import annotations

import numpy as np
import pytest

from textgym.envs.mountaincar import VALLEY_POSITION
from textgym.envs.mountaincar_continuous import MountainCarContinuousTranslator
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("mountaincar_continuous")
    env.reset(seed=0)
    yield env
    env.close()


@pytest.fixture
def translator(base) -> MountainCarContinuousTranslator:
    return MountainCarContinuousTranslator(base)


def test_left_of_valley_moving_right(translator: MountainCarContinuousTranslator) -> None:
    text = translator.render_observation(np.array([-0.7, 0.0301]))
    assert "0.18 m left of the valley floor, 1.15 m left of the flag" in text
    assert text.endswith("moving right at 0.0301 m per step.")


@pytest.mark.parametrize("force, sign", [(-0.5, -1), (0.5, 1)], ids=["left", "right"])
def test_force_sign_moves_the_car_the_named_way(base, force: float, sign: int) -> None:
    base.unwrapped.state = np.array([VALLEY_POSITION, 0.0])
    obs, *_ = base.step(np.array([force], dtype=np.float32))
    assert np.sign(obs[1]) == sign


def test_descriptions(translator: MountainCarContinuousTranslator) -> None:
    assert "flag at 0.45 m" in translator.goal_description()
    actions = translator.action_description()
    assert 'from -1.00 to 1.00, e.g. "Action: 0.00"' in actions and "positive pushes the car right" in actions


def test_expert_pushes_gently_with_the_motion(base, translator: MountainCarContinuousTranslator) -> None:
    policy = translator.expert_policy(base)
    right, left = policy(np.array([-0.4, 0.01])), policy(np.array([-0.4, -0.01]))
    assert 0 < right[0] < translator.action_high and translator.action_low < left[0] < 0
    assert base.action_space.contains(right) and base.action_space.contains(left)
