"""Model reply text -> an action the env accepts. One place, no ``eval``/``exec``.

Replies are read with the env suite's own parser (JSON ``{"action": ...}``, ``Action: X``, a name, a
number, chatter; the rules are in :mod:`textgym.action_parsing`), so an agent and the env agree on what a
reply means: a reply is valid here exactly when the env would call it valid, and nothing raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from textgym.action_parsing import json_field, parse_continuous_action, parse_discrete_action, parse_vector_action
from textgym.chat import action_json_schema  # the env layer's: ChatEnv's act tool is built from it too

__all__ = ["ParseResult", "parse_reply", "parse_tail", "action_json_schema", "reply_field", "split_json_object"]


@dataclass(frozen=True)
class ParseResult:
    """``action`` is the canonical action text (a name, or a number as text); ``None`` when unparsable."""

    action: str | None
    reason: str

    @property
    def valid(self) -> bool:
        """Whether the reply named an action."""
        return self.action is not None


def parse_reply(text: str, action_spec: dict[str, Any]) -> ParseResult:
    """Read the action from a reply, given the env's ``action_spec`` (from reset info).

    >>> parse_reply('{"action": "push right"}', {"type": "discrete", "names": ["push left", "push right"]})
    ParseResult(action='push right', reason='ok')
    >>> parse_reply("hmm", {"type": "discrete", "names": ["push left", "push right"]}).valid
    False
    """
    excerpt = ("" if text is None else str(text))[:200]
    if action_spec["type"] == "discrete":
        names = action_spec["names"]
        index = parse_discrete_action(text, names)
        if index is None:
            return ParseResult(None, f"no valid action among {names} in reply {excerpt!r}")
        return ParseResult(names[index], "ok")
    if action_spec["type"] == "vector":
        return _parse_vector_reply(text, action_spec, excerpt)
    value = parse_continuous_action(text)
    if value is None:
        return ParseResult(None, f"no finite number in reply {excerpt!r}")
    clipped = min(max(value, action_spec["low"]), action_spec["high"])
    return ParseResult(f"{clipped:.{action_spec.get('digits', 2)}f}", "ok" if clipped == value else "clipped")


def _parse_vector_reply(text: str, action_spec: dict[str, Any], excerpt: str) -> ParseResult:
    """One number per actuator: the canonical ``{"name": 0.50, ...}`` text the env reads back, clipped."""
    names = action_spec["names"]
    values = parse_vector_action(text, names)
    if values is None:
        return ParseResult(None, f"no finite number for every actuator of {names} in reply {excerpt!r}")
    clipped = [min(max(value, low), high) for value, low, high in zip(values, action_spec["low"], action_spec["high"],
                                                                     strict=True)]
    digits = action_spec.get("digits", 2)
    canonical = "{" + ", ".join(f'"{name}": {value:.{digits}f}' for name, value in zip(names, clipped, strict=True))
    return ParseResult(canonical + "}", "ok" if clipped == values else "clipped")


def reply_field(text: str, name: str) -> str:
    """A string field of a JSON reply, or the whole text when the reply is not such JSON. Never raises.

    >>> reply_field('Sure: {"insight": "push early"}', "insight"), reply_field("push early", "insight")
    ('push early', 'push early')
    """
    value = json_field(text, name)
    return value if isinstance(value, str) else text.strip()


def split_json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """The first JSON object in ``text`` and the rest of the text around it; ``(None, text)`` when there is none.

    Never raises: a reply that is cut off, nested too deep or not JSON at all comes back whole.

    >>> split_json_object('{"pole_limit": "0.21 rad"} It balanced for 40 steps.')
    ({'pole_limit': '0.21 rad'}, 'It balanced for 40 steps.')
    >>> split_json_object("no json here")
    (None, 'no json here')
    """
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            payload, end = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(payload, dict):
            rest = f"{text[:match.start()].strip()} {text[end:].strip()}".strip()
            return payload, rest.strip("` \n")
    return None, text.strip()


def parse_tail(text: str, action_spec: dict[str, Any], lines: int = 3) -> ParseResult:
    r"""Read the action from the last ``lines`` non-empty lines of ``text`` only (code fences skipped).

    For replies whose body holds other action names or numbers, such as PAL's programs.

    >>> spec = {"type": "discrete", "names": ["push left", "push right"]}
    >>> parse_tail('left = 1\nright = 2\n# Action: push right\n```', spec)
    ParseResult(action='push right', reason='ok')
    """
    kept = [line for line in text.splitlines() if line.strip() and not line.strip().startswith("```")]
    tail = "\n".join(kept[-lines:])
    return parse_reply(tail, action_spec) if tail else ParseResult(None, "empty reply")
