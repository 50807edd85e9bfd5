"""Pendulum's text names the right turn directions, and its expert balances an upright pendulum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textgym.envs.pendulum import PendulumTranslator
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("pendulum")
    env.reset(seed=0)
    yield env
    env.close()


@pytest.fixture
def translator(base) -> PendulumTranslator:
    return PendulumTranslator(base)


def test_horizontal_left_rotating_clockwise(translator: PendulumTranslator) -> None:
    text = translator.render_observation(np.array([0.0, 1.0, -3.25]))
    assert text == ("The pendulum is 1.571 rad counterclockwise from upright (cos 0.000, sin 1.000), "
                    "rotating clockwise at 3.250 rad/s.")


def test_hanging_down(translator: PendulumTranslator) -> None:
    assert "3.142 rad" in translator.render_observation(np.array([-1.0, 0.0, 0.0]))


@pytest.mark.parametrize("torque, sign", [(-1.0, -1), (1.0, 1)], ids=["clockwise", "counterclockwise"])
def test_torque_sign_turns_the_named_way(base, torque: float, sign: int) -> None:
    base.unwrapped.state = np.array([math.pi, 0.0])  # hanging straight down: no pull from gravity
    obs, *_ = base.step(np.array([torque], dtype=np.float32))
    assert np.sign(obs[2]) == sign


def test_expert_holds_it_upright(base, translator: PendulumTranslator) -> None:
    policy = translator.expert_policy(base)
    base.unwrapped.state = np.array([0.3, -0.5])
    obs = base.unwrapped._get_obs()
    total = 0.0
    for _ in range(100):
        obs, reward, *_ = base.step(policy(obs))
        total += float(reward)
    assert obs[0] > 0.999 and total > -5
