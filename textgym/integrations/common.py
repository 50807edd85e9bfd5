"""What the integrations share: JSON-safe step info and a conversation's turns as one text."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["jsonable", "messages_text"]


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars (a raw observation, a base action) and dataclasses as plain Python.

    >>> jsonable({"raw_obs": np.array([0.5, 1.0]), "action": np.int64(1)})
    {'raw_obs': [0.5, 1.0], 'action': 1}
    """
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def messages_text(messages: Iterable[Mapping[str, Any]]) -> str:
    r"""The text contents of chat messages, one paragraph each (for interfaces whose observation is a string).

    >>> messages_text([{"role": "system", "content": "Rules."}, {"role": "user", "content": "State."}])
    'Rules.\n\nState.'
    """
    return "\n\n".join(str(message.get("content") or "") for message in messages)
