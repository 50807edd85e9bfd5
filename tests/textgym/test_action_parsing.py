from __future__ import annotations

import subprocess
import sys
import textwrap

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


# ---------------------------------------------------------------------------------------- the validity rule
MOUNTAINCAR = ["push left", "do not push", "push right"]


@pytest.mark.parametrize(("text", "expected"), [
    # Numbers are whole tokens: a sign, fraction or exponent is part of the number, never dropped.
    ("Action: -1", None), ("-1", None), ("I pick -1", None), ("Action: \u22121", None), ("x-1", None), ("--1", None),
    ("99", None), ("Action: 99", None), ("12", None), ("2.5", None), ("Action: 2.5", None), ("-0", None),
    ("+0", None), ("2e0", None), ("1e309", None), ("Action: nan", None), ("9" * 400, None), ("9" * 5000, None),
    ("+2", 1), ("02", 1), ("2.0", 1), ("Action: 2.", 1), ("Action: 2!", 1), ("I'll go with 1.", 0),
    ("2nd", None), ("v1.2.3", None), ("Action: \u0662", None), ("Action: \uff12", None),
    # The decisive step's answer stands: no falling back to another number or name.
    ("I choose 2 because the angle is 0.05", None), ('{"action": null} Action: 2', None),
    ('{"action": 0} push left', None), ('{"action": "left"} push right', None), ("1 or 2", 1),
    # Labels, names and canonical texts.
    ("Action: 2: push right", 1), ("Action: 1: push right", None), ("Action: 2 (push right)", 1),
    ("Action: 2. Push left would have failed", 1), ("push right (action 2)", 1), ("**Action:** 2", 1),
    ("'action': 2", 1), ("Action:\n\n2", 1), ("action #2", 1), ("action number 1", 0), ("Action = push left", 0),
    ("The best action is to push right", 1), ("Action: I would push left", 0), ("Action: push", None),
    ("PUSH-LEFT", 0), ("push_left", 0), ("pushleft", None), ("push\u00e9left", None), ("stic\u212a", None),
    # JSON: numbers as written, strings as action values, everything else names no action.
    ('{"action": 2.0}', 1), ('{"action": 2e0}', None), ('{"action": "2"}', 1), ('{"action": "2: push right"}', 1),
    ('{"action": true}', None), ('{"action": [2]}', None), ('{"action": {"name": "push left"}}', None),
    ('{"action": ' + "9" * 5000 + "}", None), ('{"action": NaN}', None), ('{"Action": "push left"}', 0),
    ('{"thought": "the {pole} leans", "action": "push right"}', 1), ('{"reply": {"action": 2}}', 1),
    ('{"action": 1} then {"action": 2}', 1), ("[" * 5000 + "]" * 5000 + ' {"action": 2}', 1),
    ('{"a": ' * 3000 + "1" + "}" * 3000 + " Action: 2", 1),
    # Escape codes and placeholders are no text.
    ("\x00\x01\x02\x1b[2J", None), ("\x1b[31m2\x1b[0m", 1), ("push\x1b[0m left", 0), ("pu\x00sh left", None),
    ("\x1b]0;title 2\x07", None), ("{action} %s %d {0} ...", None), ("Action: {2}", None), ("{{ 1 }}", None),
    ("%2d", None), ("Action: %d", None),
])
def test_discrete_rule(text: str, expected: int | None) -> None:
    assert parse_discrete_action(text, NAMES) == expected


def test_a_number_and_a_name_that_disagree_name_no_action() -> None:
    assert parse_discrete_action("Action: 2: do not push", MOUNTAINCAR) == 1
    assert parse_discrete_action("Action: 2 (push right)", MOUNTAINCAR) is None
    assert parse_discrete_action("do not push left", MOUNTAINCAR) == 0  # the name that ends last


@pytest.mark.parametrize(("text", "expected"), [
    ("\x00\x01\x02\x1b[2J", None), ("{action} %s %d {0} ...", None), ("%5.2f", None), ("{{ 0.5 }}", None),
    ("${0.5}", None), ("{action:.2f}", None), ("\x1b]0;title 7\x07", None), ("\x1b[31m0.5\x1b[0m", 0.5),
    ("{0.5}", 0.5), ("{action: 0.5}", 0.5), ("{action:0.5}", 0.5), ("50% power", 50.0), ("Action: .5", 0.5),
    ("Action: \u22120.7", -0.7), ("-0", 0.0), ("1e308", 1e308), ("-1e309", None), ("9" * 400, None),
    ("0.5 or nan", None), ("Action: nan, earlier 0.3", None), ("Action: inf", None), ("Action: -Infinity", None),
    ('{"action": [0.5]}', 0.5), ('{"action": [0.5, 1]}', None), ('{"action": "0.5 N m"}', 0.5),
    ('{"action": "strong"}', None), ('{"action": NaN}', None), ('{"action": 1e999}', None), ('{"action": true}', None),
    ('{"action": ' + "9" * 5000 + "}", None), ("Action: push right 0.5", 0.5), ("0.5 ... Action: -0.25", -0.25),
])
def test_continuous_rule(text: str, expected: float | None) -> None:
    assert parse_continuous_action(text) == expected


def test_non_strings_never_raise() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    for value in (None, 2, 2.5, b"2", ["push left"], Broken(), "\ud800 push left \udfff"):
        parse_discrete_action(value, NAMES)
        parse_continuous_action(value)
    assert parse_discrete_action(2, NAMES) == 1 and parse_discrete_action(Broken(), NAMES) is None
    assert parse_discrete_action("\ud800 push left \udfff", NAMES) == 0


def test_adversarial_10_kb_texts_finish() -> None:
    """A guard against catastrophic backtracking (the old label pattern took 1.7 s on "action" and 100 spaces and
    grew with the cube of the spaces): parse hostile 10 kB texts in a child process that must end within 60 s."""
    script = textwrap.dedent("""
        from textgym.action_parsing import parse_continuous_action, parse_discrete_action
        n = 10_000
        texts = ["action" + " " * n + "!", "action " * (n // 7), "Action:" * (n // 7), "{" * n, '{"a":' * (n // 5),
                 "[" * n, "%" + "0" * n, "\\x1b[" + "0;" * (n // 2), "9" * n, "-" * n + "1", "9." * (n // 2),
                 "{0:" * (n // 3), "action is push " * (n // 15), '{"action": 1}' * (n // 14), "\\x1b]" + "2" * n]
        for text in texts:
            parse_discrete_action(text, ["push left", "push right"])
            parse_continuous_action(text)
        print("done")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr
