"""Read an action back from free text: a number, a name, ``Action: 2``, ``{"action": ...}``, chatter.

Nothing here evaluates model text; it only matches patterns. Both functions return ``None``
for text they cannot understand, and the caller decides the fallback.

Discrete actions are numbered from 1 in text, as the action descriptions show them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

__all__ = ["parse_discrete_action", "parse_continuous_action"]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# "Action: 2", "action is push left", "action #3", "action = (0.5" ... capturing the number or words after it.
_LABELLED = re.compile(
    rf"\baction\b\s*(?:number|no\.?|#)?\s*(?:[:=]|is|\bto\b)?\s*[\"'(\[]?\s*({_NUMBER}|[a-z][a-z _-]*)",
    re.IGNORECASE,
)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


def _json_action(text: str) -> object | None:
    """The value of the last ``{"action": ...}`` object in ``text``, if any."""
    for match in reversed(list(_JSON_OBJECT.finditer(text))):
        try:
            payload = json.loads(match.group(0))
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(payload, dict):
            for key, value in payload.items():
                if str(key).lower() == "action":
                    return value
    return None


def _normalise(text: str) -> str:
    """Lower-case words separated by single spaces; keeps signs and decimal points of numbers."""
    text = re.sub(r"[^a-z0-9.+-]+", " ", text.lower())
    text = re.sub(r"(?<!\d)\.|\.(?!\d)|[+-](?![\d.])", " ", text)
    return " ".join(text.split())


def _discrete_from_value(value: str, names: Sequence[str]) -> int | None:
    stripped = value.strip().strip("\"'.,;:!()[]").strip()
    if re.fullmatch(r"[-+]?\d+(?:\.0+)?", stripped):
        number = int(float(stripped))
        return number - 1 if 1 <= number <= len(names) else None
    normalised = _normalise(stripped)
    lowered = [_normalise(name) for name in names]
    if normalised in lowered:
        return lowered.index(normalised)
    return None


def _last_name_mentioned(text: str, names: Sequence[str]) -> int | None:
    """The action whose name occurs last in ``text`` (longest name wins at the same place)."""
    haystack = f" {_normalise(text)} "
    best: tuple[int, int, int] | None = None  # (end position, length, index)
    for index, name in enumerate(names):
        needle = f" {_normalise(name)} "
        position = haystack.rfind(needle)
        if position >= 0:
            candidate = (position + len(needle), len(needle), index)
            if best is None or candidate[:2] > best[:2]:
                best = candidate
    return None if best is None else best[2]


def parse_discrete_action(text: str, names: Sequence[str]) -> int | None:
    """Parse ``text`` into a 0-based index into ``names``, or ``None``.

    Tried in order: a JSON object's ``action`` field, a labelled ``Action: X``, the whole text as
    a number or name, the last action name mentioned, the last in-range number.

    >>> parse_discrete_action("Action: 2", ["push left", "push right"])
    1
    >>> parse_discrete_action('I think {"action": "push left"} is best', ["push left", "push right"])
    0
    >>> parse_discrete_action("no idea", ["push left", "push right"]) is None
    True
    """
    text = str(text)
    value = _json_action(text)
    if value is not None and not isinstance(value, (dict, list)):
        parsed = _discrete_from_value(str(value), names)
        if parsed is not None:
            return parsed
    for match in reversed(list(_LABELLED.finditer(text))):
        parsed = _discrete_from_value(match.group(1), names)
        if parsed is None:
            parsed = _last_name_mentioned(text[match.start(1):], names)
        if parsed is not None:
            return parsed
    parsed = _discrete_from_value(text, names)
    if parsed is not None:
        return parsed
    parsed = _last_name_mentioned(text, names)
    if parsed is not None:
        return parsed
    for number in reversed(re.findall(r"(?<![\w.])\d+(?![\w.])", text)):
        if 1 <= int(number) <= len(names):
            return int(number) - 1
    return None


def parse_continuous_action(text: str) -> float | None:
    """Parse ``text`` into a finite number (not yet clipped), or ``None``.

    Tried in order: a JSON object's ``action`` field, a labelled ``Action: X``, the last number.

    >>> parse_continuous_action("Action: -0.5")
    -0.5
    >>> parse_continuous_action('{"action": 1.25}')
    1.25
    """
    text = str(text)
    candidates: list[str] = []
    value = _json_action(text)
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        candidates.append(str(value))
    candidates += [m.group(1) for m in reversed(list(_LABELLED.finditer(text)))]
    candidates += list(reversed(re.findall(_NUMBER, text)))
    for candidate in candidates:
        match = re.fullmatch(rf"\s*({_NUMBER})\s*", candidate)
        if match is None:
            continue
        try:
            number = float(match.group(1))
        except ValueError:
            continue
        if math.isfinite(number):
            return number
    return None
