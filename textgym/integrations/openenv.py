"""A TextGym chat env served through OpenEnv (``pip install "textgym[openenv]"``; openenv 0.10.0).

``textgym-serve env=cartpole level=1 port=8000`` (experiments/serve.py) runs :func:`create_app` under uvicorn.
Each WebSocket connection (``/ws``, what OpenEnv's clients use) is a session with its own
:class:`textgym.chat.ChatEnv`; up to ``max_sessions`` run at once and one more is refused with OpenEnv's
``CAPACITY_REACHED`` error. A client that disconnects frees its session. The action has one required text
field, ``reply`` (the model's text; see ``GET /schema``), and an optional ``tool_calls`` list for a server whose
``action_format`` is ``"tool"``; a malformed payload gets OpenEnv's validation error and
an over-long reply (more than ``max_reply_chars``) an error naming the limit, and in both cases the session
goes on. Model text is only parsed, never executed.

    >>> import asyncio
    >>> from openenv import GenericEnvClient
    >>> async def play(url):  # doctest: +SKIP
    ...     async with GenericEnvClient(base_url=url) as client:
    ...         result = await client.reset(seed=0)
    ...         while not result.done:
    ...             result = await client.step({"reply": '{"action": "push left"}'})
    ...         return result.observation["info"]["return"]

An observation carries ``messages`` (the env's new chat turns: at reset the system briefing and the first user
turn) and ``info`` (the step info of :class:`~textgym.chat.ChatEnv`, made JSON-safe); ``reward`` is the step
reward and ``done`` ends the episode.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from pydantic import Field

from textgym.chat import ChatEnv
from textgym.integrations import require_extra
from textgym.integrations.common import jsonable

require_extra("openenv", "openenv", "OpenEnv (openenv)")
# openenv.core.env_server imports gradio (~4 s); it is only needed once a server is built, so import it here,
# where a server is the point.
from openenv.core.env_server import Environment, create_fastapi_app  # noqa: E402
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State  # noqa: E402

__all__ = ["ChatEnvironment", "SessionFactory", "TextAction", "TextObservation", "create_app"]

DEFAULT_MAX_REPLY_CHARS = 16_384
"""Longest reply accepted per step: a few pages of reasoning; longer ones are refused, not parsed."""


class TextAction(Action):
    """The model's reply to the last turn: text, parsed by the env's action format (never executed)."""

    reply: str = Field(description="The model's reply (its whole message text); longer replies than the "
                                   "server's max_reply_chars are refused with an error naming the limit")
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, description="The reply's OpenAI-style tool calls, for a server whose action_format is 'tool' "
                                  "(the act tool's schema is in the reset observation's info.tools)")


class TextObservation(Observation):
    """The env's new chat turns and the step's info; ``reward`` is the step reward."""

    messages: list[dict[str, Any]] = Field(default_factory=list,
                                           description="New chat messages from the env (role, content)")
    info: dict[str, Any] = Field(default_factory=dict, description="TextGym's step info (JSON-safe)")


class ChatEnvironment(Environment[TextAction, TextObservation, State]):
    """One session's :class:`~textgym.chat.ChatEnv` behind OpenEnv's ``Environment`` interface.

    Args:
        env: TextGym env name or id.
        level: knowledge level (L3 is refused by ``ChatEnv``).
        max_reply_chars: longest reply accepted.
        on_close: called once when the session ends (the factory's session count).
        **chat_kwargs: passed on to :class:`~textgym.chat.ChatEnv`.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True  # every session owns its ChatEnv; nothing mutable is shared

    def __init__(self, env: str, level: int, max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
                 on_close: Any = None, **chat_kwargs: Any) -> None:
        super().__init__()
        self.chat = ChatEnv(env, level, **chat_kwargs)
        self.env_name, self.level, self.max_reply_chars = env, level, max_reply_chars
        self._state = State(episode_id=None, step_count=0)
        self._done = True
        self._started = False
        self._on_close = on_close

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> TextObservation:
        """Start an episode; the observation's messages are the system briefing and the first user turn."""
        messages, info = self.chat.reset(seed=seed)
        self._state = State(episode_id=episode_id or uuid.uuid4().hex, step_count=0)
        self._done, self._started = False, True
        return TextObservation(messages=messages, info=jsonable(info), done=False, reward=None)

    def step(self, action: TextAction, timeout_s: float | None = None, **kwargs: Any) -> TextObservation:
        """Play the reply; refuses one over ``max_reply_chars`` or outside an episode, keeping the session."""
        if not self._started:
            raise RuntimeError("no episode yet: send reset first")
        if self._done:
            raise RuntimeError("the episode is over: send reset to start another")
        if len(action.reply) > self.max_reply_chars:
            raise ValueError(f"reply has {len(action.reply)} characters: at most {self.max_reply_chars} are allowed "
                             f"(textgym-serve max_reply_chars)")
        reply: Any = action.reply
        if action.tool_calls is not None:
            reply = {"role": "assistant", "content": action.reply, "tool_calls": action.tool_calls}
            if len(json.dumps(action.tool_calls)) > self.max_reply_chars:
                raise ValueError(f"tool_calls take more than {self.max_reply_chars} characters as JSON "
                                 f"(textgym-serve max_reply_chars)")
        messages, reward, terminated, truncated, info = self.chat.step(reply)
        self._done = bool(terminated or truncated)
        self._state.step_count += 1
        return TextObservation(messages=messages, info=jsonable({**info, "terminated": terminated,
                                                                 "truncated": truncated}),
                               done=self._done, reward=float(reward))

    @property
    def state(self) -> State:
        """The episode id and the number of steps played."""
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        """Which TextGym env and level this server plays."""
        return EnvironmentMetadata(name=f"textgym:{self.env_name}-L{self.level}",
                                   description=f"TextGym {self.env_name} at knowledge level {self.level} as a chat: "
                                               f"send reset(seed), then step({{'reply': <model text>}})")

    def close(self) -> None:
        """Close the text env (OpenEnv calls this when the session ends, a disconnect included)."""
        self.chat.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


class SessionFactory:
    """Makes one :class:`ChatEnvironment` per session and counts the live ones (``GET /sessions``).

    Args:
        env: TextGym env name or id.
        level: knowledge level.
        max_reply_chars: longest reply accepted.
        **chat_kwargs: passed on to :class:`~textgym.chat.ChatEnv`.
    """

    def __init__(self, env: str, level: int, max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
                 **chat_kwargs: Any) -> None:
        self.env, self.level, self.max_reply_chars, self.chat_kwargs = env, level, max_reply_chars, chat_kwargs
        self.live = 0
        self.created = 0
        self._lock = threading.Lock()  # sessions are made and closed on OpenEnv's executor threads

    def __call__(self) -> ChatEnvironment:
        """A new environment for one session."""
        environment = ChatEnvironment(self.env, self.level, self.max_reply_chars, on_close=self._closed,
                                      **self.chat_kwargs)
        with self._lock:
            self.live += 1
            self.created += 1
        return environment

    def _closed(self) -> None:
        with self._lock:
            self.live -= 1


def create_app(env: str, level: int = 1, *, max_sessions: int = 64, max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
               **chat_kwargs: Any) -> Any:
    """OpenEnv's FastAPI app serving one TextGym env and level, with concurrent WebSocket sessions.

    Args:
        env: TextGym env name (``"cartpole"``) or id.
        level: knowledge level (1, 2, 4, 5).
        max_sessions: concurrent sessions; one more is refused with ``CAPACITY_REACHED``.
        max_reply_chars: longest reply accepted per step.
        **chat_kwargs: passed on to :class:`~textgym.chat.ChatEnv` (``action_format``, ``invalid_action``,
            ``format_penalty``, ``history``, base-task kwargs).

    Returns:
        A ``fastapi.FastAPI`` app; its ``state.sessions`` is the :class:`SessionFactory`, also answered by
        ``GET /sessions`` (``{"active": ..., "max": ..., "created": ...}``).
    """
    if max_sessions < 1 or max_reply_chars < 1:
        raise ValueError(f"expected max_sessions >= 1 and max_reply_chars >= 1, actually {max_sessions} and "
                         f"{max_reply_chars}")
    sessions = SessionFactory(env, level, max_reply_chars, **chat_kwargs)
    probe = ChatEnv(env, level, **chat_kwargs)  # a bad env, level or option fails here, before serving, and
    probe.reference_returns()  # normalized_return's anchors are built once, not by the first sessions to end
    probe.close()
    app = create_fastapi_app(sessions, TextAction, TextObservation, max_concurrent_envs=max_sessions,
                             env_name=f"textgym-{sessions.env}-L{level}")
    app.state.sessions = sessions

    @app.get("/sessions", tags=["Health"])
    def session_count() -> dict[str, int]:
        """Live sessions, the cap, and environments made since the start (OpenEnv's start-up probe included)."""
        return {"active": sessions.live, "max": max_sessions, "created": sessions.created}

    return app
