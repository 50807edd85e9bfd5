"""agents.parsing reads replies exactly as the env reads actions, and never raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.parsing import ParseResult, parse_reply, reply_field
from textgym.envs.lunarlander import LunarLanderTranslator
from textgym.envs.pendulum import PendulumTranslator
from textgym.wrapper import make_base_env

LANDER = LunarLanderTranslator(make_base_env("lunarlander"))
PENDULUM = PendulumTranslator(make_base_env("pendulum"))
REPLIES = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=300),
    st.lists(st.sampled_from(["Action: ", "-", "1", "2", "4", "9", ".5", "e9", "{", "}", '"action": ', "nan", "[", "]",
                              "fire main engine", "do nothing", " ", "\x1b[2J", "{0}", "%d"]),
             max_size=12).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(REPLIES)
def test_a_reply_is_valid_exactly_when_the_env_would_call_it_valid(text: str) -> None:
    for translator in (LANDER, PENDULUM):
        parsed = parse_reply(text, translator.action_spec())
        env_reading = translator.parse_action(text)
        assert parsed.valid == env_reading.valid, text
        if parsed.valid:  # the canonical text the agent sends plays what the env would have played
            assert translator.parse_action(parsed.action).action == pytest.approx(env_reading.action, abs=0.005)


NEVER_AN_ACTION = ["9" * 400, "9" * 5000, "1e309", "nan", "\x00\x01\x02\x1b[2J", "{action} %s %d {0} ...",
                   "{" * 10_000, '{"a":' * 3000, '{"action": ' + "9" * 5000 + "}", '{"action": NaN}', "\ud800", "",
                   None]


@pytest.mark.parametrize(("translator", "text"), [
    *((LANDER, text) for text in [*NEVER_AN_ACTION, "Action: -1", "Action: 0", "Action: 5", "2.5", "-0"]),
    *((PENDULUM, text) for text in [*NEVER_AN_ACTION, "Action: inf", "{{ 1 }}", "\x1b]0;7\x07"]),
])
def test_bad_replies_are_invalid_not_errors(translator, text: str | None) -> None:
    parsed = parse_reply(text, translator.action_spec())  # type: ignore[arg-type]
    assert isinstance(parsed, ParseResult) and not parsed.valid and parsed.reason


def test_good_replies() -> None:
    spec = LANDER.action_spec()
    assert parse_reply('{"thought": "falling {fast}", "action": "fire main engine"}', spec).action == "fire main engine"
    assert parse_reply("Descending too fast. Action: 3: fire main engine", spec).action == "fire main engine"
    assert parse_reply("Action: 3: do nothing", spec).valid is False  # the number and the name disagree
    assert parse_reply("Action: 1.75", PENDULUM.action_spec()) == ParseResult("1.75", "ok")
    assert parse_reply("Action: 7", PENDULUM.action_spec()) == ParseResult("2.00", "clipped")


def test_reply_field_never_raises_and_finds_the_field() -> None:
    assert reply_field('Here: {"insight": "brake early", "n": 2}', "insight") == "brake early"
    assert reply_field('{"outer": {"insight": "nested"}}', "insight") == "nested"
    assert reply_field('{"insight": 5}', "insight") == '{"insight": 5}'  # not a string: the whole text
    for hostile in ["{" * 10_000, '{"a":' * 3000 + "}" * 3000, "[" * 10_000, "}{" * 5000, "\ud800{}"]:
        assert reply_field(hostile, "insight") == hostile.strip()
