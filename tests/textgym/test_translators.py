"""Translators are faithful: observations can be read back from their text and actions round-trip."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from textgym.registration import ENVS
from textgym.wrapper import make_base_env, make_translator

ENV_NAMES = list(ENVS)
# Every text each env can speak: the default, and the full map where the default hides it.
TEXT_MODES = [(name, None) for name in ENVS] + [(name, True) for name in ENVS
                                               if ENVS[name].translator_class().hides_map]
MODE_IDS = [f"{name}{'-map_visible' if visible else ''}" for name, visible in TEXT_MODES]


@functools.cache  # one base env per text: making a MuJoCo or Atari task costs milliseconds
def _translator(name: str, map_visible: bool | None = None):
    base = make_base_env(name)
    return base, make_translator(name, base, map_visible=map_visible)


@pytest.mark.parametrize("name, map_visible", TEXT_MODES, ids=MODE_IDS)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_observation_read_back(name: str, map_visible: bool | None, seed: int) -> None:
    base, translator = _translator(name, map_visible)
    base.observation_space.seed(seed)
    obs = base.observation_space.sample()
    text = translator.render_observation(obs)
    recovered = translator.read_observation(text)
    expected = translator.observation_values(obs)
    np.testing.assert_allclose(np.asarray(recovered, dtype=float).reshape(-1), expected,
                               rtol=0, atol=translator.observation_precision + 1e-9, err_msg=text)


@pytest.mark.parametrize("name, map_visible", TEXT_MODES, ids=MODE_IDS)
def test_observations_from_real_episodes_read_back(name: str, map_visible: bool | None) -> None:
    base, translator = _translator(name, map_visible)
    obs, _ = base.reset(seed=0)
    text = translator.render_observation(obs)
    base.action_space.seed(0)
    for _ in range(200):
        # The text after a step, as the text env shows it (with any note on what the step touched).
        np.testing.assert_allclose(np.asarray(translator.read_observation(text), dtype=float).reshape(-1),
                                   translator.observation_values(obs),
                                   atol=translator.observation_precision + 1e-9, err_msg=text)
        action = base.action_space.sample()
        next_obs, reward, terminated, truncated, _ = base.step(action)
        text = translator.render_step(obs, action, float(reward), next_obs)
        obs = next_obs
        if terminated or truncated:
            obs, _ = base.reset()
            text = translator.render_observation(obs)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_actions_round_trip(name: str) -> None:
    base, translator = _translator(name)
    if translator.is_discrete:
        for index, action_name in enumerate(translator.action_names):
            for text in (translator.action_to_text(index), action_name, f"Action: {index + 1}",
                         f'{{"action": "{action_name}"}}', f"I think the best is {action_name}."):
                parsed = translator.parse_action(text)
                assert parsed.valid and parsed.action == index, text
            assert base.action_space.contains(translator.parse_action(action_name).action)
    else:
        base.action_space.seed(0)
        for _ in range(50):
            action = base.action_space.sample()
            parsed = translator.parse_action(translator.action_to_text(action))
            assert parsed.valid
            assert np.max(np.abs(parsed.action - action)) <= 0.5 * 10**-translator.action_digits + 1e-6
            assert base.action_space.contains(parsed.action)


def test_exact_action_names_read_as_the_rules_read_them() -> None:
    # parse_discrete_action answers a text that is exactly an action name, or the reply {"action": name},
    # from a table before its rules: only right if the rules give each of them that action for every env too.
    from textgym.action_parsing import _parse_discrete_by_rules

    checked = 0
    for name in ENV_NAMES:
        _, translator = _translator(name)
        if translator.is_discrete:
            names = tuple(translator.action_names)
            for form in ("{}", '{{"action": "{}"}}', '{{"action":"{}"}}'):
                assert [_parse_discrete_by_rules(form.format(action_name), names) for action_name in names] == list(
                    range(len(names))), (name, form)
            checked += 1
    assert checked >= 10  # the classic discrete envs and the Atari ones


@pytest.mark.parametrize("name", ENV_NAMES)
def test_continuous_actions_clip_and_fallback(name: str) -> None:
    base, translator = _translator(name)
    if translator.is_discrete:
        parsed = translator.parse_action("xyzzy")
        assert not parsed.valid and parsed.action == translator.fallback_action_index
        return
    if translator.is_vector:  # one number per actuator, each clipped; the fallback is 0 everywhere
        count = len(translator.action_names)
        assert translator.parse_action(f"Action: {', '.join(['1e6'] * count)}").action.tolist() == list(
            translator.action_highs)
        assert translator.parse_action(str([-1e6] * count)).action.tolist() == list(translator.action_lows)
        parsed = translator.parse_action("no number here")
        assert not parsed.valid and parsed.action.tolist() == [0.0] * count
        return
    assert translator.parse_action("Action: 1e6").action[0] == pytest.approx(translator.action_high)
    assert translator.parse_action("-1e6").action[0] == pytest.approx(translator.action_low)
    parsed = translator.parse_action("no number here")
    assert not parsed.valid and parsed.action[0] == 0.0


@pytest.mark.parametrize("name", ENV_NAMES)
@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_parse_action_never_raises(name: str, text: str) -> None:
    base, translator = _translator(name)
    parsed = translator.parse_action(text)
    assert base.action_space.contains(parsed.action)
