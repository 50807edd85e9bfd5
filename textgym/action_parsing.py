r"""Read an action back from free text: a number, a name, ``Action: 2``, ``{"action": ...}``, chatter.

Nothing here evaluates model text; it only matches patterns. Both parsers take any string (any length, any
code point, lone surrogates included) or other object, never raise, and return ``None`` for text that
does not name or number a real action; the caller plays its fallback. Every pattern runs in linear time
(possessive quantifiers, no nested repetition) and each step reads the text a bounded number of times;
text longer than :data:`MAX_TEXT_CHARS` is not read at all (it is invalid), which bounds the work.

**What the text is.** Terminal escape sequences (``"\x1b[2J"``) and other control characters are
invisible on a screen and are read as spaces. Format placeholders are template leftovers, not answers:
``{}``, ``{0}``, ``{action}``, ``{0:.2f}``, ``{{ action }}``, ``{% ... %}``, ``${action}``, ``%s``,
``%d``, ``%(name)s``, ``%.2f`` are read as spaces (but ``{0.5}`` and ``{action: 0.5}`` are numbers in
braces, and a ``%`` right after a number is a percent sign).

**Numbers.** A number is a whole token, sign, fraction and exponent included: ``-1`` is minus one (never
1), ``2.5`` is two and a half (never 2), ``12`` is twelve, ``1e309`` and ``9`` * 400 are too large to
be finite; ``nan``, ``inf`` and ``infinity`` are numbers too, non-finite ones. Digits glued to letters
or to another number (``2nd``, ``x1``, ``v1.2.3``, ``--1``, ``1_000``) are not a number. Unicode minus
and dash characters count as ``-``; only ASCII digits are digits.

**Discrete actions** are numbered from 1, as the action descriptions show them. An *action number* is a
number written as a whole number from 1 to n (``2``, ``+2``, ``02``, ``2.0``); every other number
(``0``, ``-1``, ``-0``, ``99``, ``2.5``, ``2e0``, ``nan``) numbers no action. An *action name* is one
of the names as whole words, ignoring case and punctuation (``PUSH-LEFT`` is ``push left``). An *action
value* is a text that starts with an action number or name (``2``, ``push left``, ``2: push right``,
``push left, because ...``); a number followed at once by a name that disagrees with it
(``1: push right``) is a contradiction and names no action.

The first of these steps that finds something decides, and when what it finds is not a real action the
text is invalid: the parser never falls back to some other number or name elsewhere in the text.

1. **JSON:** the ``action`` field (any case) of the most complete JSON object that has one (the whole
   ``{...}`` span when it is one object, else the last innermost ``{...}``; prose and code fences around
   it are fine). A JSON number is read as written, so ``2`` and ``2.0`` are action 2, ``2e0`` and
   ``true`` are not; a string must be an action value; ``null``, lists and objects name no action.
2. **Label:** the last ``action`` label followed by a number or an action name: ``Action: 2``,
   ``action is push left``, ``action #3``, ``**Action:** 2``, ``"action": "push left"``. A label
   followed by other words is chatter (``the action space``, ``Action: I would push left``) and skipped.
3. **Names:** the action whose name is mentioned last (the longer name where two end at the same
   word). A name beats numbers because chatter is full of numbers (observations, reasoning) and
   rarely holds action names.
4. **Numbers:** the last number in the text; it must be an action number.

So ``"Action: -1"``, ``"-1"``, ``"99"``, ``"2.5"`` and ``'{"action": 0}'`` are invalid; ``"I pick -1"``
is invalid (not action 1); ``"I pick 2, the angle is 0.05"`` is invalid (its last number is 0.05);
``"push right (action 2)"`` is action 2 and ``"push left is wrong, push right"`` is push right.

**Continuous actions** (a 1-D ``Box``): the same steps without names. The JSON ``action`` value must be
a finite number, a one-element list of one, or a string that starts with one; a label must be followed
by a number, which decides; otherwise the last number in the text decides. A non-finite number (``nan``,
``inf``, ``1e309``) is invalid wherever it decides, so NaN and infinity never reach the base env. A
finite number outside the action's bounds is valid: the translator clips it to the bounds.

**Vector actions** (a ``Box`` of n > 1 numbers, one per named actuator, as the MuJoCo tasks have): one
finite number for every actuator, in one of these forms, tried in order; the first form found decides.

1. **JSON object:** the ``action`` field of the most complete JSON object that has one, else the most
   complete JSON object whose keys are all the actuator names. Its value is an object mapping every
   actuator name to a number (``{"thigh": 0.3, "leg": -0.1, "foot": 0}``; names ignore case, and
   spaces, ``_`` and ``-`` are alike; other keys are allowed) or a list of exactly n numbers in the
   documented order.
2. **JSON list:** the last ``[...]`` list of exactly n numbers (``Action: [0.3, -0.1, 0.0]``).
3. **Named values:** ``name: value`` or ``name = value`` for every actuator (one per line or all on one
   line); the last value given for a name counts, and a longer name wins over a name inside it
   (``left thigh`` is not ``thigh``).
4. **Label:** the last ``action`` label followed by exactly n numbers separated by commas or spaces.

A missing actuator, an extra number in a list, a non-finite number (``nan``, ``inf``, ``1e309``) or a
value that is not a number makes the text invalid: nothing is guessed (no default for a missing name).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["parse_discrete_action", "parse_continuous_action", "parse_vector_action", "json_field", "MAX_TEXT_CHARS"]

MAX_TEXT_CHARS = 100_000
"""Longer text is not read and names no action: far beyond any reply (the env's action space holds 4,096
characters), and it bounds the work on any input to well under a second."""

# -------------------------------------------------------------------------------------------- what the text is
_ESCAPE_SEQUENCE = re.compile(
    r"""(?=[\x1b\x90-\x9f])  # (a first-character test lets the engine skip plain text quickly)
    (?:
      (?:\x1b\[|\x9b)[0-?]*+[ -/]*+[@-~]?+                      # CSI: parameters, intermediates, final byte
    | (?:\x1b\]|\x9d)[^\x07\x1b\x9c]*+(?:\x07|\x1b\\|\x9c)?+     # OSC (a window title) up to BEL or ST
    | (?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c]*+(?:\x1b\\|\x9c)?+  # DCS, SOS, PM, APC strings up to ST
    | \x1b[ -/]*+[0-~]?+                                     # the other ESC sequences (charset, keypad, cursor)
    )
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]++")
_DASHES = str.maketrans({**dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
                         "\uff0b": "+"})
_PLACEHOLDER = re.compile(
    r"""(?=[{%$])
    (?:
      \{\{[^{}]*+\}\} | \{%[^{}]*+%\} | \$\{[^{}]*+\}                          # Jinja / shell
    | \{(?:[0-9]++|[A-Za-z_][A-Za-z0-9_]*+)?+(?:\.[A-Za-z_][A-Za-z0-9_]*+|\[[^\]{}]*+\])*+
        (?:![rsa])?+(?::(?![-+]?+[0-9.]*+\})[^{}\s]*+)?+\}     # str.format: {} {0} {x.y[1]!r:>5}, not {x:0.5}
    | (?<![0-9.])%(?:\([^()]*+\))?+[-\#0 +]*+(?:\*|[0-9]++)?+(?:\.(?:\*|[0-9]++))?+[hlL]?+[diouxXeEfFgGcrsa%]
    )
    """,
    re.VERBOSE,
)


def _visible_text(text: object) -> str | None:
    r"""``text`` as a screen shows it: escape sequences and control characters become spaces, dashes ``-``.

    ``None`` is ``""``, other objects are read through ``str`` (one whose ``__str__`` fails says nothing);
    returns ``None`` for text longer than :data:`MAX_TEXT_CHARS`.

    >>> _without_placeholders(_visible_text("\x1b[31m2\x1b[0m is {action} %d")).split()
    ['2', 'is']
    """
    if text is None:
        text = ""
    elif not isinstance(text, str):
        try:
            text = str(text)
        except Exception:
            text = ""
    if len(text) > MAX_TEXT_CHARS:
        return None
    return _CONTROL.sub(" ", _ESCAPE_SEQUENCE.sub(" ", text)).translate(_DASHES)


def _without_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub(" ", text)


# -------------------------------------------------------------------------------------------- JSON
_MISSING = object()
_INNERMOST_OBJECT = re.compile(r"\{[^{}]*+\}")


class _JSONNumber(str):
    """A JSON number kept as written, so that ``2e0`` or a 5,000-digit integer follow the rules for numbers in text."""


_KEEP_NUMBERS: dict[str, Any] = {"parse_int": _JSONNumber, "parse_float": _JSONNumber, "parse_constant": _JSONNumber}


def _json_objects(text: str, numbers_as_text: bool) -> Iterator[dict[str, Any]]:
    """Dicts in ``text``, most complete first.

    The span from the first ``{`` to the last ``}``, then the innermost ``{...}`` objects from last to first (which
    finds an object inside prose or inside other JSON).
    """
    first, last = text.find("{"), text.rfind("}")
    if first < 0 or last < first:
        return
    spans = [text[first:last + 1]]
    spans += [m.group(0) for m in reversed(list(_INNERMOST_OBJECT.finditer(text, first, last + 1)))]
    options: dict[str, Any] = _KEEP_NUMBERS if numbers_as_text else {}
    for span in spans:
        try:
            payload = json.loads(span, **options)
        except (ValueError, RecursionError):  # not JSON, nested too deep, or an integer too long for int()
            continue
        if isinstance(payload, dict):
            yield payload


def json_field(text: str, name: str, default: Any = None, numbers_as_text: bool = False) -> Any:
    """The value of field ``name`` (any case) in the most complete JSON object in ``text`` that has one.

    Args:
        text: any text; JSON may be surrounded by prose or code fences, or nested in other JSON.
        name: the field.
        default: returned when no JSON object in ``text`` has the field.
        numbers_as_text: give JSON numbers (and ``NaN``/``Infinity``) as the text they were written as.

    Never raises.

    >>> json_field('Reasoning. {"thought": "lean {left}", "Action": "push left"}', "action")
    'push left'
    """
    wanted = name.lower()
    for payload in _json_objects(text, numbers_as_text):
        for key, value in payload.items():
            if key.lower() == wanted:
                return value
    return default


def _json_action(text: str) -> object:
    return json_field(text, "action", default=_MISSING, numbers_as_text=True)


# -------------------------------------------------------------------------------------------- numbers
# A whole number token: its sign belongs to it, and it is not glued to a word, a decimal point or a sign.
_NUMBER = re.compile(
    r"""(?=[-+.0-9nNiI])
    (?:
    (?>(?<![\w.+\-])(?P<sign>[-+])|(?<![\w.+\-]))
    (?:
        (?P<int>[0-9]++)(?:\.(?P<frac>[0-9]++))?+ | \.(?P<only_frac>[0-9]++)
    )
    (?P<exp>[eE][-+]?+[0-9]++)?+
    (?![\w]|\.[0-9])
    | (?<![\w.+\-])(?P<word_sign>[-+]?+)(?P<word>nan|inf(?:inity)?+)\b
    )
    """,
    re.VERBOSE | re.IGNORECASE,
)
_LEADING_NOISE = re.compile(r"[\s\"'`*_(\[<{#=:~]*+")


def _number_at(text: str, pos: int) -> re.Match[str] | None:
    """A number token starting at ``pos`` (after quotes, brackets and markup), or ``None``."""
    return _NUMBER.match(text, _LEADING_NOISE.match(text, pos).end())  # type: ignore[union-attr]  # matches empty text


def _finite_value(match: re.Match[str]) -> float | None:
    if match.group("word"):
        return None
    value = float(match.group(0))  # float() takes any length; too large is inf, caught below
    return value if math.isfinite(value) else None


def _action_number(match: re.Match[str], count: int) -> int | None:
    """The 0-based action a number token numbers, or ``None`` when it is not a whole number in 1..count."""
    if match.group("word") or match.group("sign") == "-" or match.group("exp") or match.group("only_frac"):
        return None
    if (match.group("frac") or "0").strip("0"):
        return None
    digits = match.group("int").lstrip("0")
    if not digits or len(digits) > len(str(count)):  # never int() a huge digit string
        return None
    number = int(digits)
    return number - 1 if number <= count else None


# -------------------------------------------------------------------------------------------- names
# Words are runs of letters and digits of any script (so "pushéleft" is one word, not "push left"); only
# ASCII words are lower-cased, so no non-ASCII letter becomes part of a name (the Kelvin sign is not "k").
_WORD = re.compile(r"[^\W_]++")


def _lower(word: str) -> str:
    return word.lower() if word.isascii() else word


@lru_cache(maxsize=64)
def _name_words(names: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(word.lower() for word in _WORD.findall(name)) for name in names)


def _name_at(text: str, pos: int, names: tuple[str, ...]) -> int | None:
    """The action whose name the text starts with at ``pos`` (the longest such name), or ``None``."""
    name_words = _name_words(names)
    longest = max(map(len, name_words), default=0)
    words: list[str] = []
    for match in _WORD.finditer(text, pos):
        if not words and match.start() != pos:
            return None
        words.append(_lower(match.group(0)))
        if len(words) == longest:
            break
    best: int | None = None
    for index, candidate in enumerate(name_words):
        if candidate and tuple(words[:len(candidate)]) == candidate:
            if best is None or len(candidate) > len(name_words[best]):
                best = index
    return best


def _last_name_mentioned(text: str, names: tuple[str, ...]) -> int | None:
    """The action whose name ends last in ``text`` (the longer name where two end at the same word)."""
    name_words = _name_words(names)
    by_length = sorted((item for item in enumerate(name_words) if item[1]), key=lambda item: -len(item[1]))
    last_words = {words[-1] for _, words in by_length}
    words = [_lower(word) for word in _WORD.findall(text)]
    for end in range(len(words), 0, -1):
        if words[end - 1] not in last_words:
            continue
        for index, candidate in by_length:
            if tuple(words[max(0, end - len(candidate)):end]) == candidate:
                return index
    return None


_INVALID = object()
"""A reading that decides: the text gave an answer, and the answer is no action."""
# Between a number and the name that says the same on one line: "2: push right", "2 (push right)", "2 - push right".
_NAME_AFTER_NUMBER = re.compile(r"[ \t\"'`*]*+(?:[:=(\[-][ \t\"'`*]*+)?+")


def _discrete_value_at(text: str, pos: int, names: tuple[str, ...]) -> object:
    """The action value at ``pos``: an index, :data:`_INVALID`, or ``None`` when no number or name starts there."""
    pos = _LEADING_NOISE.match(text, pos).end()  # type: ignore[union-attr]  # matches empty text
    number = _NUMBER.match(text, pos)
    if number is None:
        return _name_at(text, pos, names)
    index = _action_number(number, len(names))
    if index is None:
        return _INVALID
    name_start = _NAME_AFTER_NUMBER.match(text, number.end()).end()  # type: ignore[union-attr]  # matches empty text
    named = _name_at(text, name_start, names)
    return _INVALID if named is not None and named != index else index  # "1: push right" contradicts itself


_LABEL = r"""\baction\b["']?+\**+\s*+(?:(?:number\b|no\.|\#)\s*+)?+(?:(?:[:=]|is\b)\s*+)?+"""


@lru_cache(maxsize=64)
def _label_pattern(first_words: tuple[str, ...]) -> re.Pattern[str]:
    """``action`` labels followed by what may be a number or a name starting with one of ``first_words``.

    Testing the value's first characters in the pattern skips chatter labels without Python-level work.
    """
    starts = "|".join(["nan", "inf", "infinity", *map(re.escape, first_words)])
    return re.compile(rf"{_LABEL}{_LEADING_NOISE.pattern}(?=[-+.0-9]|(?:{starts})(?![^\W_]))", re.IGNORECASE)


def parse_discrete_action(text: object, names: Sequence[str]) -> int | None:
    """Parse ``text`` into a 0-based index into ``names``, or ``None``; the rules are in the module docstring.

    >>> parse_discrete_action("Action: 2", ["push left", "push right"])
    1
    >>> parse_discrete_action('I think {"action": "push left"} is best', ["push left", "push right"])
    0
    >>> parse_discrete_action("Action: -1", ["push left", "push right"]) is None
    True
    >>> parse_discrete_action("no idea", ["push left", "push right"]) is None
    True
    """
    names = tuple(names)
    exact = _exact_texts(names).get(text) if isinstance(text, str) else None
    if exact is not None:
        return exact  # a canonical text, read as the rules below read it too (a test checks it for every env)
    return _parse_discrete_by_rules(text, names)


@lru_cache(maxsize=64)
def _exact_texts(names: tuple[str, ...]) -> dict[str, int]:
    """The texts most replies are, word for word.

    An action's name (what agents hand the env) and the constrained-decoding reply ``{"action": "<name>"}``, with or
    without the space.
    """
    table: dict[str, int] = {}
    for index, name in enumerate(names):
        for text in (name, f'{{"action": {json.dumps(name)}}}', f'{{"action":{json.dumps(name)}}}'):
            table.setdefault(text, index)
    return table


def _parse_discrete_by_rules(text: object, names: tuple[str, ...]) -> int | None:
    text = _visible_text(text)
    if text is None:
        return None
    value = _json_action(text)
    if value is not _MISSING:
        return _discrete_json_value(value, names)
    text = _without_placeholders(text)
    labels = _label_pattern(tuple(sorted({words[0] for words in _name_words(names) if words})))
    for label in reversed(list(labels.finditer(text))):
        reading = _discrete_value_at(text, label.end(), names)
        if reading is not None:
            return None if reading is _INVALID else reading  # type: ignore[return-value]  # else an index
    named = _last_name_mentioned(text, names)
    if named is not None:
        return named
    numbers = list(_NUMBER.finditer(text))
    return _action_number(numbers[-1], len(names)) if numbers else None


def _discrete_json_value(value: object, names: tuple[str, ...]) -> int | None:
    if isinstance(value, _JSONNumber):
        number = _NUMBER.fullmatch(value)
        return None if number is None else _action_number(number, len(names))
    if isinstance(value, str):
        reading = _discrete_value_at(_without_placeholders(_visible_text(value) or ""), 0, names)
        return None if reading is None or reading is _INVALID else reading  # type: ignore[return-value]  # an index
    return None  # null, true/false, a list or an object names no action


def parse_continuous_action(text: object) -> float | None:
    r"""Parse ``text`` into a finite number (not yet clipped), or ``None``; the rules are in the module docstring.

    >>> parse_continuous_action("Action: -0.5")
    -0.5
    >>> parse_continuous_action('{"action": 1.25}')
    1.25
    >>> parse_continuous_action("\x1b[2J {0} %d") is None
    True
    """
    text = _visible_text(text)
    if text is None:
        return None
    value = _json_action(text)
    if value is not _MISSING:
        return _continuous_json_value(value)
    text = _without_placeholders(text)
    for label in reversed(list(_label_pattern(()).finditer(text))):
        number = _number_at(text, label.end())
        if number is not None:
            return _finite_value(number)
    numbers = list(_NUMBER.finditer(text))
    return _finite_value(numbers[-1]) if numbers else None


def _continuous_json_value(value: object) -> float | None:
    if isinstance(value, list) and len(value) == 1:  # the raw Box action is a 1-vector
        value = value[0]
    if isinstance(value, _JSONNumber):
        number = _NUMBER.fullmatch(value)
    elif isinstance(value, str):
        number = _number_at(_without_placeholders(_visible_text(value) or ""), 0)
    else:
        return None  # null, true/false, a longer list or an object is no number
    return None if number is None else _finite_value(number)


# -------------------------------------------------------------------------------------------- vectors
_INNERMOST_LIST = re.compile(r"\[[^\[\]{}]*+\]")
_SEPARATOR = re.compile(r"\s*+[,;]?+\s*+")


def _actuator_key(name: str) -> str:
    """``"Left_Thigh"``, ``"left thigh"`` and ``"left-thigh"`` are one name."""
    return " ".join(_lower(word) for word in _WORD.findall(name))


@lru_cache(maxsize=64)
def _named_value_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    """``name: number`` for any of ``names``, longest names first so that ``left thigh`` is not ``thigh``."""
    alternatives = sorted(names, key=len, reverse=True)
    spelled = "|".join("[\\s_-]++".join(map(re.escape, _WORD.findall(name))) for name in alternatives)
    return re.compile(rf"(?<![^\W_])(?P<name>{spelled})(?![^\W_])[\"'`*]*+\s*+[:=]\s*+", re.IGNORECASE)


def _vector_from_numbers(tokens: list[object], count: int) -> list[float] | None:
    """Exactly ``count`` finite numbers (JSON numbers or number tokens), or ``None``."""
    if len(tokens) != count:
        return None
    values = []
    for token in tokens:
        number = _NUMBER.fullmatch(token) if isinstance(token, _JSONNumber) else None
        value = None if number is None else _finite_value(number)
        if value is None:
            return None
        values.append(value)
    return values


def _vector_json_value(value: object, names: tuple[str, ...]) -> list[float] | None:
    if isinstance(value, list):
        return _vector_from_numbers(value, len(names))
    if not isinstance(value, dict):
        return None
    by_key = {_actuator_key(str(key)): item for key, item in value.items()}
    keys = [_actuator_key(name) for name in names]
    if not all(key in by_key for key in keys):
        return None
    return _vector_from_numbers([by_key[key] for key in keys], len(names))


def parse_vector_action(text: object, names: Sequence[str]) -> list[float] | None:
    r"""Parse ``text`` into one finite number per actuator of ``names`` (not yet clipped), or ``None``.

    The rules are in the module docstring.

    >>> parse_vector_action('{"thigh": 0.3, "leg": -0.1, "foot": 0}', ["thigh", "leg", "foot"])
    [0.3, -0.1, 0.0]
    >>> parse_vector_action("thigh: 0.3\nleg = -0.1\nfoot: 0.0", ["thigh", "leg", "foot"])
    [0.3, -0.1, 0.0]
    >>> parse_vector_action("Action: [0.3, -0.1]", ["thigh", "leg", "foot"]) is None
    True
    """
    names = tuple(names)
    text = _visible_text(text)
    if text is None or not names:
        return None
    value = _json_action(text)
    if value is not _MISSING:
        return _vector_json_value(value, names)
    keys = {_actuator_key(name) for name in names}
    for payload in _json_objects(text, numbers_as_text=True):
        if keys <= {_actuator_key(str(key)) for key in payload}:
            return _vector_json_value(payload, names)
    lists = list(_INNERMOST_LIST.finditer(text))
    for match in reversed(lists):
        try:
            items = json.loads(match.group(0), **_KEEP_NUMBERS)
        except (ValueError, RecursionError):
            continue
        if isinstance(items, list) and len(items) == len(names):
            return _vector_from_numbers(items, len(names))
    text = _without_placeholders(text)
    found: dict[str, re.Match[str] | None] = {}
    for match in _named_value_pattern(names).finditer(text):
        found[_actuator_key(match.group("name"))] = _number_at(text, match.end())
    if found:
        if not keys <= set(found) or any(found[key] is None for key in keys):
            return None
        values = [_finite_value(found[_actuator_key(name)]) for name in names]  # type: ignore[arg-type]  # none is None
        return None if any(v is None for v in values) else values  # type: ignore[return-value]  # no None left
    for label in reversed(list(_label_pattern(()).finditer(text))):
        tokens: list[re.Match[str]] = []
        position = label.end()
        while (number := _number_at(text, position)) is not None and len(tokens) <= len(names):
            tokens.append(number)
            position = _SEPARATOR.match(text, number.end()).end()  # type: ignore[union-attr]  # matches empty text
        if tokens:
            if len(tokens) != len(names):
                return None
            values = [_finite_value(token) for token in tokens]
            return None if any(v is None for v in values) else values  # type: ignore[return-value]  # no None left
    return None
