from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from textgym.action_parsing import parse_continuous_action, parse_discrete_action

NAMES = ["push left", "push right"]


@pytest.mark.parametrize(("text", "expected"), [
    ("Action: 2", 1), ("2", 1), ("push right", 1), ("PUSH LEFT", 0), ('{"action": 2}', 1),
    ('```json\n{"action": "push left"}\n```', 0), ("I considered push left, but push right is better.", 1),
    ("Reasoning... Action: push left", 0), ("action is 1", 0), ("Action: 3", None), ("", None),
    ("0", None), ("Final answer: {\"thought\": \"x\", \"action\": 1}", 0),
])
def test_discrete_forms(text: str, expected: int | None) -> None:
    assert parse_discrete_action(text, NAMES) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Action: -0.5", -0.5), ("0.25", 0.25), ('{"action": 1.5}', 1.5), ("apply torque 2 now", 2.0),
    ("nan", None), ("inf", None), ("none", None), ("1e999", None),
])
def test_continuous_forms(text: str, expected: float | None) -> None:
    assert parse_continuous_action(text) == expected


@given(st.text(max_size=500))
def test_fuzz_never_raises(text: str) -> None:
    result = parse_discrete_action(text, NAMES)
    assert result is None or 0 <= result < len(NAMES)
    number = parse_continuous_action(text)
    assert number is None or abs(number) < float("inf")


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                       max_size=3), max_leaves=10))
def test_fuzz_json_payloads(payload: object) -> None:
    import json

    text = json.dumps({"action": payload})
    parse_discrete_action(text, NAMES)
    parse_continuous_action(text)
