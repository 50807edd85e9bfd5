"""What agents and runners need of a chat model.

:class:`ChatModel`, and the :class:`Completion` and :class:`Usage` it returns. :class:`~agents.llm.client.LLMClient` is
the HTTP implementation; a backend of your own implements these few members (no subclassing) and plugs in with
``llm=custom llm._target_=pkg.MyBackend``.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["ChatModel", "Completion", "Usage", "Message"]

Message = dict[str, str]


@dataclass
class Usage:
    """Token, call, latency and dollar counts; add them up with ``+``.

    ``cached_prompt_tokens`` are the prompt tokens the server said it served from its prefix cache
    (0 where it does not say); ``prompt_tokens - cached_prompt_tokens`` is what it had to read anew.
    """

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached_prompt_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        # Field by field: this runs a few times per decision, and a zip over astuple() costs 3x as much.
        return Usage(self.calls + other.calls, self.cached_calls + other.cached_calls,
                     self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.latency_s + other.latency_s, self.cost_usd + other.cost_usd,
                     self.cached_prompt_tokens + other.cached_prompt_tokens)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.calls - other.calls, self.cached_calls - other.cached_calls,
                     self.prompt_tokens - other.prompt_tokens, self.completion_tokens - other.completion_tokens,
                     self.latency_s - other.latency_s, self.cost_usd - other.cost_usd,
                     self.cached_prompt_tokens - other.cached_prompt_tokens)

    def astuple(self) -> tuple[int, int, int, int, float, float, int]:
        """The fields in declaration order."""
        return (self.calls, self.cached_calls, self.prompt_tokens, self.completion_tokens, self.latency_s,
                self.cost_usd, self.cached_prompt_tokens)


@dataclass(frozen=True)
class Completion:
    """One chat completion's answer: ``n`` texts, what they cost, and one record per request made.

    ``records`` holds one dict per HTTP request (or one per cache hit): ``purpose``, ``request`` (model,
    messages, n, temperature, max_tokens, seed, response_format or None), ``texts``, ``usage``
    (prompt_tokens, completion_tokens, cached_prompt_tokens or None when the server does not say),
    ``latency_s`` and ``from_cache``. No API key is ever in them.
    """

    texts: list[str]
    usage: Usage = field(default_factory=Usage)
    records: list[dict[str, Any]] = field(default_factory=list)
    token_logprobs: list[list[dict[str, Any]] | None] | None = None
    """Per text, its tokens as ``{"token", "logprob", "id"?}`` when asked for (``logprobs=True``) and the server
    gave them; else ``None``."""

    @property
    def text(self) -> str:
        """The first text (``""`` when there is none)."""
        return self.texts[0] if self.texts else ""


@runtime_checkable
class ChatModel(Protocol):
    """A chat model as agents and the runner use it.

    Attributes:
        model: the model's name (results and run identities show it).
        usage: everything spent so far, added up (the runner reports it).
    """

    model: str
    usage: Usage

    async def complete(self, messages: list[Message], *, n: int = 1, json_schema: dict[str, Any] | None = None,
                       temperature: float | None = None, max_tokens: int | None = None, purpose: str = "action",
                       session: Hashable | None = None) -> Completion:
        """``n`` completions of ``messages``.

        Args:
            messages: the chat messages.
            n: how many samples.
            json_schema: the schema replies should follow, where the backend can constrain them.
            temperature: overrides the backend's default.
            max_tokens: overrides the backend's default.
            purpose: what the call is for (``"action"``, ``"summary"``, ...), kept in the records only.
            session: what the request belongs to (an agent's stream), for backends that keep per-session state.
        """
        ...

    async def aclose(self) -> None:
        """Release what the model holds in the running event loop (connections); it may be used again later."""
        ...
