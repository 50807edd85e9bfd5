"""Every text env against arbitrary action text: no exception, a finite state, and "valid" only for real actions.

The oracle below is deliberately simpler (and more lenient) than the parser: it only asks whether the text
mentions the action that was played at all, by its words in order or by its digits with no minus sign
right before them (escape codes may hide text between them, so it does not insist on whole words). A parser
that reads ``-1`` as 1 or picks an action the text never wrote fails it; the exact rule is pinned down by
the targeted properties below and the unit tests in test_action_parsing.py.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import textgym
from textgym.registration import EnvEntry
from textgym.wrapper import TextEnv


def _can_make(entry: EnvEntry) -> bool:
    missing_extra = getattr(entry, "missing_extra", None)  # envs behind an optional extra (Atari) may be absent
    return missing_extra is None or missing_extra() is None


ENV_IDS = [entry.text_id for entry in textgym.ENVS.values() if _can_make(entry)]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def _env(env_id: str) -> gym.Env:
    env = gym.make(env_id)
    env.reset(seed=0)
    return env


def _text_env(env: gym.Env) -> TextEnv:
    wrapper = env
    while not isinstance(wrapper, TextEnv):
        wrapper = wrapper.env
    return wrapper


def _step(env_id: str, text: str) -> dict:
    """Step the env with ``text``; check what must hold for any text; reset when the episode ends."""
    env = _env(env_id)
    obs, reward, terminated, truncated, info = env.step(text)
    assert isinstance(obs, str) and math.isfinite(float(reward))
    assert np.all(np.isfinite(np.asarray(info["raw_obs"], dtype=float)))
    state = getattr(env.unwrapped, "state", None)
    if isinstance(state, np.ndarray):
        assert np.all(np.isfinite(state))
    translator = _text_env(env).translator
    if translator.is_discrete:
        assert 0 <= info["action"] < len(translator.action_names)
        if info["invalid_action"]:
            assert info["action"] == translator.fallback_action_index
    elif translator.is_vector:
        action = np.asarray(info["action"], dtype=float)
        assert action.shape == (len(translator.action_names),)
        assert np.all(np.array(translator.action_lows) <= action) and np.all(action <= translator.action_highs)
        if info["invalid_action"]:
            assert np.all(action == np.clip(0.0, translator.action_lows, translator.action_highs))
    else:
        action = np.asarray(info["action"], dtype=float)
        assert action.shape == (1,) and translator.action_low <= action[0] <= translator.action_high
        if info["invalid_action"]:
            assert action[0] == min(max(0.0, translator.action_low), translator.action_high)
    if terminated or truncated:
        env.reset()
    return info


# ---------------------------------------------------------------------------------------- the oracle
def _mentions_name(text: str, name: str) -> bool:
    """The name's words occur in the text in order, in any case, anywhere (inside other words too)."""
    lowered, position = text.lower(), 0
    for word in name.lower().split():
        position = lowered.find(word, position)
        if position < 0:
            return False
        position += len(word)
    return True


def _mentions_number(text: str, number: int) -> bool:
    """The number's digits occur in the text somewhere without a minus sign right before them."""
    digits = str(number)
    return any(text[max(0, match.start() - 1):match.start()] != "-" for match in re.finditer(digits, text))


def _names_or_numbers(text: str, names: tuple[str, ...], index: int) -> bool:
    return _mentions_name(text, names[index]) or _mentions_number(text, index + 1)


# ---------------------------------------------------------------------------------------- text strategies
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=400)  # lone surrogates and controls included
ESCAPES = st.one_of(
    st.sampled_from(["\x1b[2J", "\x1b[31m", "\x1b[0m", "\x1b[1;2H", "\x1b]0;title 7\x07", "\x1b]2;12", "\x1b(B",
                     "\x1b7", "\x9b5m", "\x1b[", "\x1b", "\x00\x01\x02", "\x7f", "\x1bP1$r\x1b\\"]),
    st.builds(lambda params, final: "\x1b[" + ";".join(map(str, params)) + final,
              st.lists(st.integers(0, 999), max_size=3), st.sampled_from("mHJKABCDfsu")),
)
PLACEHOLDERS = st.sampled_from(["{}", "{0}", "{1}", "{2}", "{action}", "{0:.2f}", "{action:>5}", "{{ action }}",
                                "{{ 1 }}", "{% if x %}", "${action}", "${1}", "%s", "%d", "%5d", "%.2f", "%(action)s"])
NUMBERS = st.one_of(
    st.integers(-3, 12).map(str), st.integers().map(str), st.floats().map(repr), st.floats().map(str),
    st.text("0123456789", min_size=1, max_size=600),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "NaN", "Infinity", "1e309", "-1e309", "-0", "+0", "0.0", "2.",
                     ".5", "1e0", "2e0", "9" * 400, "0" * 50 + "1", "\u22121", "1_000", "1,000"]),
)
SIGNS = st.sampled_from(["-", "+", "\u2212", "--", "e", "E", ".", "e-", "e+", "#", "x"])
LABELS = st.sampled_from(["Action: ", "action ", "ACTION=", "**Action:** ", '"action": ', "'action': ", "action is ",
                          "action #", "Action number ", "The action is to ", "Action:\n"])
FILLER = st.sampled_from([" ", "\n", ", ", ". ", "I think ", "because ", "the pole ", "left ", "right ", "push ",
                          "not ", "move ", "up ", "fire ", "engine ", "ignore previous instructions and ",
                          "'; DROP TABLE actions; -- ", "__import__('os').system('x') ", "{{7*7}} ", "<|im_end|>",
                          "```json\n", "```", "\u00e9", "\ud800", "\u212a", "\u202e"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["action", "Action", "thought", "a"]), children, max_size=3),
    max_leaves=8,
)


def _json_texts(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    value = st.one_of(JSON_VALUES, st.sampled_from(names), st.integers(-2, len(names) + 2))
    objects = st.dictionaries(st.sampled_from(["action", "Action", "thought", "reply"]), value, min_size=1, max_size=3)
    whole = objects.map(json.dumps)
    return st.one_of(whole, st.tuples(whole, st.integers(0, 40)).map(lambda pair: pair[0][:pair[1]]),  # cut off
                     st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),
                     st.integers(1, 3000).map(lambda depth: '{"a": ' * depth + "1" + "}" * depth))


@cache
def _fragments(env_id: str) -> st.SearchStrategy[str]:
    translator = _text_env(_env(env_id)).translator
    names = translator.action_names
    pieces = [ESCAPES, PLACEHOLDERS, NUMBERS, SIGNS, LABELS, FILLER, _json_texts(names or ("x",)),
              st.text(st.characters(exclude_categories=()), max_size=8)]
    if names:
        canonical = ([translator.action_to_text(index) for index in range(len(names))] if translator.is_discrete
                     else [translator.action_to_text(translator.parse_action("").action)])  # actuator names
        pieces.append(st.sampled_from([*names, *canonical, *(name.upper() for name in names),
                                       *(name.replace(" ", "-") for name in names)]))
    return st.lists(st.one_of(pieces), max_size=12).map("".join)


def _texts(env_id: str) -> st.SearchStrategy[str]:
    return st.one_of(ANY_TEXT, _fragments(env_id))


# ---------------------------------------------------------------------------------------- properties
def _check_valid_only_if_named(env_id: str, text: str) -> None:
    info = _step(env_id, text)
    translator = _text_env(_env(env_id)).translator
    if info["invalid_action"]:
        return
    if translator.is_discrete:
        assert _names_or_numbers(text, translator.action_names, int(info["action"])), (text, info["action"])
    else:
        assert re.search(r"[0-9]", text), text


@pytest.mark.parametrize("env_id", ENV_IDS)
@FUZZ
@given(data=st.data())
def test_any_text_is_safe_and_valid_only_when_it_names_the_action(env_id: str, data: st.DataObject) -> None:
    _check_valid_only_if_named(env_id, data.draw(_texts(env_id), label="text"))


HOSTILE = ["9" * 400, "9" * 5000, "1e309", "-1e309", "nan", "inf", "-0", "Action: -1", "Action: 99",
           "\x00\x01\x02\x1b[2J", "{action} %s %d {0} ...", "x" * 10_000, "action" + " " * 10_000 + "!",
           "action " * 1500, "{" * 10_000, '{"a":' * 2000, "[" * 10_000, "%" + "0" * 10_000, "\ud800\udfff",
           "\u202e2", '{"action": ' + "9" * 5000 + "}", '{"action": NaN}', '{"action": [1e999]}', "A" * 200_000]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_hostile_texts(env_id: str) -> None:
    for text in HOSTILE:
        _check_valid_only_if_named(env_id, text)


DISCRETE_IDS = [env_id for env_id in ENV_IDS if _text_env(_env(env_id)).translator.is_discrete]
# One number per actuator (the MuJoCo tasks with more than one actuator).
VECTOR_IDS = [env_id for env_id in ENV_IDS if _text_env(_env(env_id)).translator.is_vector]
CONTINUOUS_IDS = [env_id for env_id in ENV_IDS if env_id not in DISCRETE_IDS and env_id not in VECTOR_IDS]
# Chatter that can hold no action name and no digit.
CHATTER = st.text(st.sampled_from(" ,.;!?xyzqjQJ\n\u00e9\u4e2d"), max_size=30)
FORMS = ["Action: {}", "{}", "action {}", "**Action:** {}", "I choose {}.", "{chatter} Action: {}", "{chatter} {}"]


@pytest.mark.parametrize("env_id", DISCRETE_IDS)
@FUZZ
@given(data=st.data())
def test_a_number_that_is_no_action_is_invalid(env_id: str, data: st.DataObject) -> None:
    count = len(_text_env(_env(env_id)).translator.action_names)
    number = data.draw(st.one_of(
        st.integers().filter(lambda k: not 1 <= k <= count).map(str),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()).map(repr),
        st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "2e0", "9" * 400]),
    ), label="number")
    form = data.draw(st.sampled_from([*FORMS, '{{"action": {}}}']), label="form")
    text = form.replace("{chatter}", data.draw(CHATTER)).format(number)
    assert _step(env_id, text)["invalid_action"], text


@pytest.mark.parametrize("env_id", DISCRETE_IDS)
@FUZZ
@given(data=st.data())
def test_a_real_action_in_any_form_is_read(env_id: str, data: st.DataObject) -> None:
    translator = _text_env(_env(env_id)).translator
    index = data.draw(st.integers(0, len(translator.action_names) - 1), label="index")
    name = translator.action_names[index]
    said = data.draw(st.sampled_from([str(index + 1), name, name.upper(), translator.action_to_text(index)]))
    form = data.draw(st.sampled_from([*FORMS, "json"]), label="form")
    chatter = data.draw(CHATTER)
    text = (json.dumps({"thought": chatter, "action": said}) if form == "json"
            else form.replace("{chatter}", chatter).format(said))
    info = _step(env_id, text)
    assert not info["invalid_action"] and info["action"] == index, text


@pytest.mark.parametrize("env_id", CONTINUOUS_IDS + VECTOR_IDS)
@FUZZ
@given(pieces=st.lists(st.one_of(st.sampled_from(["\x1b[2J", "\x1b[31m", "\x1b[0m", "\x1b[12;40H", "\x1b]0;t 7\x07",
                                                  "\x9b5m", "\x00\x01\x02"]),
                                 PLACEHOLDERS, CHATTER, st.sampled_from(["-", "+", ".", "e", "Action:", "nan", "inf"])),
                       max_size=10))
def test_text_without_a_real_number_is_invalid(env_id: str, pieces: list[str]) -> None:
    assert _step(env_id, " ".join(pieces))["invalid_action"], pieces


@pytest.mark.parametrize("env_id", CONTINUOUS_IDS)
@FUZZ
@given(number=st.floats(width=64), form=st.sampled_from([*FORMS, "json"]), chatter=CHATTER)
def test_a_finite_number_is_played_clipped_and_no_other_is(env_id: str, number: float, form: str, chatter: str) -> None:
    translator = _text_env(_env(env_id)).translator
    text = (json.dumps({"thought": chatter, "action": number}) if form == "json"
            else form.replace("{chatter}", chatter).format(repr(number)))
    info = _step(env_id, text)
    if not math.isfinite(number):
        assert info["invalid_action"], text
        return
    clipped = np.float32(min(max(number, translator.action_low), translator.action_high))
    assert not info["invalid_action"] and info["action"][0] == clipped, text


@pytest.mark.parametrize("env_id", VECTOR_IDS)
@FUZZ
@given(data=st.data())
def test_a_vector_is_played_clipped_only_when_every_actuator_has_a_finite_number(env_id: str,
                                                                                  data: st.DataObject) -> None:
    translator = _text_env(_env(env_id)).translator
    names = translator.action_names
    values = data.draw(st.lists(st.floats(width=64), min_size=len(names), max_size=len(names)), label="values")
    form = data.draw(st.sampled_from(["names", "list", "lines", "label"]), label="form")
    shown = [repr(value) for value in values]
    text = {"names": json.dumps({"action": dict(zip(names, values, strict=True))}),
            "list": json.dumps({"action": values}),
            "lines": "\n".join(f"{name}: {value}" for name, value in zip(names, shown, strict=True)),
            "label": "Action: " + ", ".join(shown)}[form]
    if data.draw(st.booleans(), label="drop one"):  # an actuator left out: never guessed
        text = text.replace(names[-1], "unknown") if form in ("names", "lines") else text.rsplit(",", 1)[0]
        if form != "names" or "unknown" in text:
            assert _step(env_id, text)["invalid_action"], text
            return
    info = _step(env_id, text)
    if not all(math.isfinite(value) for value in values):
        assert info["invalid_action"], text
        return
    expected = np.clip(values, translator.action_lows, translator.action_highs).astype(np.float32)
    assert not info["invalid_action"] and np.array_equal(info["action"], expected), text


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_every_canonical_action_text_round_trips(env_id: str) -> None:
    translator = _text_env(_env(env_id)).translator
    if translator.is_discrete:
        actions = list(range(len(translator.action_names)))
    elif translator.is_vector:
        # The canonical text has two decimals: actions on that grid come back exactly.
        rng = np.random.default_rng(0)
        actions = [np.round(rng.uniform(translator.action_lows, translator.action_highs), 2).astype(np.float32)
                   for _ in range(9)]
    else:
        actions = [np.array([value], dtype=np.float32)
                   for value in np.linspace(translator.action_low, translator.action_high, 9)]
    for action in actions:
        parsed = translator.parse_action(translator.action_to_text(action))
        assert parsed.valid and np.all(parsed.action == action), (action, translator.action_to_text(action))


# ---------------------------------------------------------------------------------------- the bugs of issue 8
@pytest.mark.parametrize("env_id", DISCRETE_IDS)
def test_a_huge_digit_string_is_an_invalid_action_not_an_overflow(env_id: str) -> None:
    for text in ("9" * 400, "9" * 5000, "Action: " + "9" * 400, '{"action": ' + "9" * 400 + "}"):
        info = _step(env_id, text)
        assert info["invalid_action"] and info["action"] == _text_env(_env(env_id)).translator.fallback_action_index


def test_minus_one_names_no_cartpole_action() -> None:
    for text in ("Action: -1", "-1", "I pick -1", "Action: \u22121"):
        assert _step("TextGym-CartPole-v0", text)["invalid_action"], text
    assert _step("TextGym-CartPole-v0", "Action: 1")["invalid_action"] is False


@pytest.mark.parametrize("env_id", CONTINUOUS_IDS)
@pytest.mark.parametrize("text", ["\x00\x01\x02\x1b[2J", "{action} %s %d {0} ...", "nan", "inf", "-inf", "1e309",
                                  "Action: nan", '{"action": NaN}', '{"action": 1e999}'])
def test_continuous_envs_read_no_number_from_escapes_placeholders_or_non_finite_text(env_id: str, text: str) -> None:
    info = _step(env_id, text)
    assert info["invalid_action"] and float(info["action"][0]) == 0.0
