"""Model reply text -> an action the env accepts. One place, no ``eval``/``exec``.

Replies are read with the env suite's own parser (JSON ``{"action": ...}``, ``Action: X``, a name, a
number, chatter), so an agent and the env agree on what a reply means.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from textgym.action_parsing import parse_continuous_action, parse_discrete_action

__all__ = ["ParseResult", "parse_reply", "action_json_schema", "reply_field"]


@dataclass(frozen=True)
class ParseResult:
    """``action`` is the canonical action text (a name, or a number as text); ``None`` when unparsable."""

    action: str | None
    reason: str

    @property
    def valid(self) -> bool:
        return self.action is not None


def parse_reply(text: str, action_spec: dict[str, Any]) -> ParseResult:
    """Read the action from a reply, given the env's ``action_spec`` (from reset info).

    >>> parse_reply('{"action": "push right"}', {"type": "discrete", "names": ["push left", "push right"]})
    ParseResult(action='push right', reason='ok')
    >>> parse_reply("hmm", {"type": "discrete", "names": ["push left", "push right"]}).valid
    False
    """
    if action_spec["type"] == "discrete":
        names = action_spec["names"]
        index = parse_discrete_action(text, names)
        if index is None:
            return ParseResult(None, f"no valid action among {names} in reply {text[:200]!r}")
        return ParseResult(names[index], "ok")
    value = parse_continuous_action(text)
    if value is None:
        return ParseResult(None, f"no number in reply {text[:200]!r}")
    clipped = min(max(value, action_spec["low"]), action_spec["high"])
    return ParseResult(f"{clipped:.{action_spec.get('digits', 2)}f}", "ok" if clipped == value else "clipped")


def action_json_schema(action_spec: dict[str, Any], thought_chars: int = 0) -> dict[str, Any]:
    """JSON schema for ``{"thought"?: str, "action": ...}`` that only admits valid actions.

    With ``thought_chars > 0`` a bounded ``thought`` field comes first, so the model reasons before it acts.
    """
    if action_spec["type"] == "discrete":
        action: dict[str, Any] = {"type": "string", "enum": list(action_spec["names"])}
    else:
        action = {"type": "number", "minimum": action_spec["low"], "maximum": action_spec["high"]}
    properties: dict[str, Any] = {}
    if thought_chars > 0:
        properties["thought"] = {"type": "string", "maxLength": thought_chars}
    properties["action"] = action
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def reply_field(text: str, name: str) -> str:
    """A string field of a JSON reply, or the whole text when the reply is not such JSON."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            payload = json.loads(match.group(0))
        except json.JSONDecodeError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get(name), str):
            return payload[name]
    return text.strip()
