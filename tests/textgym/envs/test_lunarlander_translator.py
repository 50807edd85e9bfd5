"""LunarLander's text names the right sides, directions and engines, and reads back to the printed precision."""

from __future__ import annotations

import numpy as np
import pytest

from textgym.envs.lunarlander import LunarLanderTranslator
from textgym.wrapper import make_base_env


@pytest.fixture
def base():
    env = make_base_env("lunarlander")
    env.reset(seed=0)
    yield env
    env.close()


@pytest.fixture
def translator(base) -> LunarLanderTranslator:
    return LunarLanderTranslator(base)


def test_known_state_in_words(translator: LunarLanderTranslator) -> None:
    obs = np.array([-0.25, 0.5, 0.1, -0.3, -0.05, 0.02, 0.0, 1.0], dtype=np.float32)
    text = translator.render_observation(obs)
    assert "0.250 left of the landing pad centre and 0.500 above the pad" in text
    assert "moves right at 0.100 and down at 0.300" in text
    assert "tilted 0.050 rad clockwise and turning counterclockwise at 0.020" in text
    # Gymnasium's order is right leg, then left leg.
    assert "The left leg touches the ground; the right leg is off the ground." in text
    np.testing.assert_allclose(translator.read_observation(text), obs, atol=translator.observation_precision)


def test_first_leg_flag_is_the_right_leg(base) -> None:
    lander = base.unwrapped
    assert lander.legs[0].position.x > lander.lander.position.x > lander.legs[1].position.x


@pytest.mark.parametrize("action, sign", [(1, 1), (3, -1)], ids=["left engine", "right engine"])
def test_orientation_engines_do_what_the_text_says(base, translator: LunarLanderTranslator, action: int,
                                                   sign: int) -> None:
    start, _ = base.reset(seed=0)
    for _ in range(10):
        obs, *_ = base.step(action)
    turned, pushed = np.sign(obs[4] - start[4]), np.sign(obs[2] - start[2])
    assert turned == sign and pushed == -sign, translator.action_names[action]
    side, turn, nudge = ("left", "counterclockwise", "left") if sign > 0 else ("right", "clockwise", "right")
    assert f"{side} orientation engine turns the lander {turn} and nudges it {nudge}" in translator.game_description()


def test_contact_values_the_env_never_emits_still_read_back(translator: LunarLanderTranslator) -> None:
    obs = np.array([0, 0, 0, 0, 0, 0, 0.25, 0.75], dtype=np.float32)
    text = translator.render_observation(obs)
    assert "ground contact 0.750" in text
    np.testing.assert_allclose(translator.read_observation(text), obs, atol=translator.observation_precision)


def test_descriptions_read_limits(translator: LunarLanderTranslator) -> None:
    assert "beyond 1.0 either way" in translator.goal_description()
    assert "3: fire main engine" in translator.action_description()
