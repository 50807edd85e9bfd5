"""ChatEnv: a TextGym task as a conversation, the one prompt builder of TextGym.

An LLM trainer or evaluator plays a text env as chat turns, with per-turn rewards::

    env = ChatEnv("cartpole", level=1, action_format="strict", invalid_action="retry:2", history="all")
    messages, info = env.reset(seed=0)          # [system briefing + how to reply, first user turn]
    while True:
        reply = model(messages)                  # the model's text, or an OpenAI-style tool call (or a list)
        new_messages, reward, terminated, truncated, info = env.step(reply)
        if terminated or truncated:
            break
        messages = env.messages                  # the next prompt (with history="all": messages + reply + new)
    info["return"], info["step_rewards"], info["normalized_return"]

API:

* ``ChatEnv(env_id, level=1, *, action_format="lenient", invalid_action="fallback", format_penalty=0.0,
  history="all", **env_kwargs)``: ``env_id`` is a config name (``"cartpole"``) or a text id
  (``"TextGym-CartPole-v0"``); ``env_kwargs`` go to ``gym.make`` (``max_episode_steps``, ``map_name``, ...).
  Level 3 (learning across episodes) is a protocol over several episodes, not a training level: refused.
* ``reset(seed=None, options=None) -> (messages, info)``: a system message (the briefing: descriptions and
  the level's knowledge, then the action format's request) and the first user turn (the state).
  ``info["tools"]`` holds the ``act`` tool's schema (``action_format="tool"``; ``[]`` otherwise), and
  ``info["action_spec"]`` the action set as data.
* ``step(reply) -> (new_messages, reward, terminated, truncated, info)``: ``new_messages`` are the env's
  turns that follow the reply (a user turn, or ``tool`` turns answering a tool call). :attr:`ChatEnv.messages`
  is always the whole next prompt, with ``history`` applied.
* ``action_format``: ``"lenient"`` reads a reply with the env's own parser (:mod:`textgym.action_parsing`);
  ``"strict"`` counts only one ``<action>...</action>`` tag or a reply that is one JSON object with an
  ``action`` field, holding exactly a valid action (a name or its number, a number, or every actuator's
  number); ``"tool"`` counts only one call of the ``act`` tool whose ``action`` argument is a valid action
  (its schema: :func:`act_tool`). Nothing else counts, so no action is ever guessed from chatter.
* ``invalid_action``: ``"fallback"`` plays the env's documented fallback action and flags the step;
  ``"retry:K"`` plays nothing and answers with a short correction turn, up to ``K`` times in a step, then
  falls back; ``"terminate"`` ends the episode (truncated). Every invalid reply costs ``format_penalty``.
* ``history``: ``"all"`` (the whole episode), an int ``k`` (the last ``k`` steps as turns) or ``0`` (one
  self-contained user prompt per step).
* ``info`` every step: ``observation``, ``raw_obs``, ``parsed_action`` (the action the reply named, as the env
  writes it, or ``None``), ``env_action`` (what the base env got; ``None`` when no env step was played),
  ``invalid_action``, ``step_reward`` (the env's reward less any penalty), ``env_reward``; at the end also
  ``return`` (the sum of ``step_rewards``), ``step_rewards``, ``env_return`` (the env's rewards only) and
  ``normalized_return``: ``(env_return - random) / (expert - random)``, with the anchors the mean returns of
  the random policy and of TextGym's expert over the L2/L4 trajectory episodes (:mod:`textgym.trajectories`),
  ``None`` where the env has no expert or the step limit is not the registered one.

The same seed and the same replies give the same messages and rewards. Model text is only parsed, never run.
:class:`Conversation` (the episode as turns: step texts rendered once, the history window) and
:func:`briefing` are the parts language agents build their prompts from.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from textgym.action_parsing import MAX_TEXT_CHARS
from textgym.levels import LEVELS
from textgym.registration import env_entry
from textgym.templating import render
from textgym.trajectories import fewshot_trajectories
from textgym.translator import Translator
from textgym.wrapper import TextEnv, state_step_limit

__all__ = ["ChatEnv", "Conversation", "briefing", "answer", "action_json_schema", "act_tool", "parse_strict_reply",
           "history_start", "ACTION_FORMATS", "INVALID_ACTIONS", "Message"]

Message = dict[str, Any]
"""An OpenAI-style chat message: ``{"role": ..., "content": ...}`` (plus ``tool_calls`` / ``tool_call_id``)."""
ACTION_FORMATS = ("lenient", "strict", "tool")
INVALID_ACTIONS = ("fallback", "retry:K", "terminate")
ACT_TOOL = "act"
NOT_PLAYED = "Not played: one act call per step."


def briefing(info: Mapping[str, Any], show_fewshot: bool = True) -> str:
    """What an agent is told at the start of an episode: the descriptions and the level's knowledge.

    Args:
        info: the text env's reset info (``game_description``, ``goal_description``, ``action_description``,
            ``knowledge``).
        show_fewshot: show the level's offline trajectories (L2/L4) as text.
    """
    return render("chat/briefing.j2", game_description=info["game_description"],
                  goal_description=info["goal_description"], action_description=info["action_description"],
                  knowledge=info["knowledge"], show_fewshot=show_fewshot)


def history_start(steps: int, window: int | None, trim: str = "sliding") -> int:
    """The first of ``steps`` earlier steps a prompt shows.

    All (``window`` ``None``), none (0), the last
    ``window`` (``"sliding"``), or from the latest multiple of ``window`` that leaves at least that many
    (``"block"``: the start moves only every ``window`` steps, so a prefix cache keeps the history between moves).
    """
    if window is None:
        return 0
    if not window:
        return steps
    if trim == "sliding":
        return max(0, steps - window)
    return max(0, steps - window) // window * window


def answer(reply: Message, text: str) -> list[Message]:
    """The env's turn after ``reply``.

    A user turn, or a ``tool`` turn for each call of a tool-call reply (the last carries ``text``), as chat APIs require
    every tool call to be answered.
    """
    calls = [call for call in reply.get("tool_calls") or () if isinstance(call, Mapping) and call.get("id")]
    if not calls:
        return [{"role": "user", "content": text}]
    return [{"role": "tool", "tool_call_id": call["id"], "content": text if i == len(calls) - 1 else NOT_PLAYED}
            for i, call in enumerate(calls)]


@dataclass
class _Step:
    state: str
    reward: float
    invalid_action: bool
    messages: list[Message] = field(default_factory=list)  # the env's turn, corrections, the reply played


class Conversation:
    """An episode as chat turns.

    One exchange per step (the env's turn, then the reply that was played), then the current step's turn.

    A step's user turn says how the step before ended (when history is shown) and gives the state
    (``chat/step.j2``). Each turn is rendered once and kept, as is each message dict, so every later prompt
    repeats it exactly (a server's prompt cache reuses it, and transcripts key messages by identity).

    Args:
        history: earlier steps shown as turns: ``None`` for all, ``0`` for none.
        trim: ``"sliding"`` or ``"block"`` (see :func:`history_start`).
    """

    def __init__(self, history: int | None = None, trim: str = "sliding") -> None:
        if history is not None and (isinstance(history, bool) or not isinstance(history, int) or history < 0):
            raise ValueError(f"history must be None (all) or an int >= 0, actually {history!r}")
        if trim not in ("sliding", "block"):
            raise ValueError(f"trim must be 'sliding' or 'block', actually {trim!r}")
        self.history = history
        self.trim = trim
        self.clear()

    def clear(self) -> None:
        """Start a new episode."""
        self._steps: list[_Step] = []
        self._texts: list[str] = []  # each step's user text, rendered once
        self.pending: list[Message] = []  # this step's invalid replies and the env's corrections (retry)

    def __len__(self) -> int:
        """Steps recorded so far."""
        return len(self._steps)

    def step_text(self, index: int, state: str | None = None) -> str:
        """The user text of step ``index``.

        How the step before ended (when history is shown) and the state (``state`` for the step not yet recorded).
        """
        if index < len(self._texts):
            return self._texts[index]
        if index > len(self._steps) or (index == len(self._steps) and state is None):
            raise IndexError(f"step {index} of an episode with {len(self._steps)} steps recorded so far")
        while len(self._texts) <= index:
            step = len(self._texts)
            observation = self._steps[step].state if step < len(self._steps) else state
            previous = self._steps[step - 1] if step and self.history != 0 else None
            self._texts.append(render("chat/step.j2", observation=observation, previous=previous))
        return self._texts[index]

    def env_turn(self, index: int, state: str | None = None, suffix: str = "") -> list[Message]:
        """The env's turn of step ``index`` (see :func:`answer`), with ``suffix`` on its own line after the text."""
        text = self.step_text(index, state)
        if suffix:
            text = f"{text}\n{suffix}"
        if not index:
            return [{"role": "user", "content": text}]
        return answer(self._steps[index - 1].messages[-1], text)

    def record(self, state: str, reply: Message, reward: float, invalid_action: bool) -> None:
        """The step played in ``state``: ``reply`` (the assistant turn that stands for it) earned ``reward``."""
        index = len(self._steps)
        turn = self.env_turn(index, state)
        self._steps.append(_Step(state, reward, invalid_action, [*turn, *self.pending, reply]))
        self.pending = []

    def messages(self, state: str, user_prompt: str = "") -> list[Message]:
        """The turns of a prompt in ``state``.

        The shown steps' exchanges, then this step's turn (its text and ``user_prompt``) and any corrections so far.
        """
        start = history_start(len(self._steps), self.history, self.trim)
        turns = [message for step in self._steps[start:] for message in step.messages]
        turns += self.env_turn(len(self._steps), state, user_prompt)
        return [*turns, *self.pending]


def action_json_schema(action_spec: Mapping[str, Any], thought_chars: int = 0) -> dict[str, Any]:
    """JSON schema of ``{"thought"?: str, "action": ...}`` that admits only valid actions of ``action_spec``.

    The action is one of the names (discrete), a number within the bounds (continuous) or an object with every
    actuator's number within its bounds (vector). With ``thought_chars > 0`` a bounded ``thought`` field comes
    first, so a model reasons before it acts.
    """
    if action_spec["type"] == "discrete":
        action: dict[str, Any] = {"type": "string", "enum": list(action_spec["names"])}
    elif action_spec["type"] == "vector":  # every actuator by name, each within its bounds
        action = {"type": "object", "additionalProperties": False, "required": list(action_spec["names"]),
                  "properties": {name: {"type": "number", "minimum": low, "maximum": high} for name, low, high
                                 in zip(action_spec["names"], action_spec["low"], action_spec["high"], strict=True)}}
    else:
        action = {"type": "number", "minimum": action_spec["low"], "maximum": action_spec["high"]}
    properties: dict[str, Any] = {}
    if thought_chars > 0:
        properties["thought"] = {"type": "string", "maxLength": thought_chars}
    properties["action"] = action
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def act_tool(action_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``act`` tool (OpenAI function-tool format) whose one argument, ``action``, is a valid action."""
    what = {"discrete": "one of the action names", "continuous": "a number within the bounds",
            "vector": "every actuator's number within its bounds"}[action_spec["type"]]
    return {"type": "function",
            "function": {"name": ACT_TOOL, "description": f"Play one action in the environment: {what}.",
                         "parameters": action_json_schema(action_spec)}}


OPEN_TAG, CLOSE_TAG = "<action>", "</action>"
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


def parse_strict_reply(text: object, action_spec: Mapping[str, Any]) -> str | None:
    """The action a reply names under the strict format, as the JSON text the env reads; ``None`` if it names none.

    Only one ``<action>...</action>`` tag (text around it is fine) or a reply that is one JSON object with an
    ``action`` field (a code fence around it is fine) counts, and what it holds must be exactly a valid
    action: an action's name (any case) or number for discrete actions, a finite number for continuous ones
    (clipped to the bounds by the env, as always), every actuator's number (an object by name or a list in
    order) for vector ones. Never raises.
    """
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        return None
    lowered = text.lower()  # counted, not searched with a pattern: linear in the text, whatever it holds
    opens, closes = lowered.count(OPEN_TAG), lowered.count(CLOSE_TAG)
    if opens or closes:
        start, end = lowered.find(OPEN_TAG) + len(OPEN_TAG), lowered.find(CLOSE_TAG)
        if opens != 1 or closes != 1 or end < start:
            return None
        content = text[start:end].strip()
        value: object = content
        if action_spec["type"] != "discrete" or content[:1] in "[{\"":
            try:
                value = json.loads(content)
            except (ValueError, RecursionError):
                return None
        return _env_text(value, action_spec)
    body = text.strip()
    fenced = _FENCE.fullmatch(body)
    try:
        payload = json.loads(fenced.group(1) if fenced else body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or "action" not in payload:
        return None
    return _env_text(payload["action"], action_spec)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _env_text(value: object, action_spec: Mapping[str, Any]) -> str | None:
    """``value`` as the JSON the env reads, when it is exactly a valid action of ``action_spec``; else ``None``.

    ``value`` may be a name, an action number, a number, a mapping or list of numbers.
    """
    kind = action_spec["type"]
    if kind == "discrete":
        names = list(action_spec["names"])
        index: int | None = None
        if isinstance(value, str):
            words = " ".join(value.split()).lower()
            lowered = [name.lower() for name in names]
            if words in lowered:
                index = lowered.index(words)
            elif words.isdigit() and words.isascii() and 1 <= int(words) <= len(names):
                index = int(words) - 1
        elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(names):
            index = value - 1
        return None if index is None else json.dumps({"action": names[index]})
    if kind == "continuous":
        number = _finite(float(value) if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) else value)
        return None if number is None else json.dumps({"action": number})
    names = list(action_spec["names"])
    if isinstance(value, Mapping):
        by_key = {str(key).lower(): item for key, item in value.items()}
        if len(by_key) != len(names) or set(by_key) != {name.lower() for name in names}:
            return None
        value = [by_key[name.lower()] for name in names]
    if not isinstance(value, list) or len(value) != len(names):
        return None
    numbers = [_finite(item) for item in value]
    if any(number is None for number in numbers):
        return None
    return json.dumps({"action": dict(zip(names, numbers, strict=True))})


def _reply_message(reply: object) -> Message:
    """``reply`` as an assistant message: text, one tool call, a list of tool calls or an assistant message."""
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}
    if isinstance(reply, Mapping) and "role" in reply:
        return dict(reply)
    if isinstance(reply, Mapping) and ("function" in reply or "name" in reply):
        return {"role": "assistant", "content": "", "tool_calls": [dict(reply)]}
    if isinstance(reply, Sequence) and reply and all(isinstance(call, Mapping) for call in reply):
        return {"role": "assistant", "content": "", "tool_calls": [dict(call) for call in reply]}
    raise TypeError("reply must be the model's text, an OpenAI-style tool call (a dict with 'function': {'name', "
                    f"'arguments'}}), a list of them or an assistant message, actually {type(reply).__name__}")


def _tool_action(message: Message, action_spec: Mapping[str, Any]) -> str | None:
    """The action of a reply that is exactly one call of the ``act`` tool with a valid ``action`` argument."""
    calls = message.get("tool_calls") or []
    if len(calls) != 1 or not isinstance(calls[0], Mapping):
        return None
    function = calls[0].get("function", calls[0])
    if not isinstance(function, Mapping) or function.get("name") != ACT_TOOL:
        return None
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        if len(arguments) > MAX_TEXT_CHARS:
            return None
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(arguments, Mapping) or set(arguments) != {"action"}:
        return None
    return _env_text(arguments["action"], action_spec)


def _reply_text(message: Message) -> str:
    """What the lenient parser reads: the reply's text, or a tool call's arguments when it has no text."""
    content = message.get("content")
    if isinstance(content, str) and content.strip():
        return content
    for call in message.get("tool_calls") or ():
        arguments = call.get("function", call).get("arguments") if isinstance(call, Mapping) else None
        if isinstance(arguments, Mapping):
            return json.dumps(dict(arguments))
        if isinstance(arguments, str):
            return arguments
    return ""


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value.item() if isinstance(value, np.generic) else value


def _invalid_action_rule(invalid_action: object) -> tuple[Literal["fallback", "terminate"], int]:
    """``invalid_action`` as (what happens once retries run out, retries per step)."""
    if invalid_action in ("fallback", "terminate"):
        return invalid_action, 0
    match = re.fullmatch(r"retry:([1-9]\d{0,2})", invalid_action) if isinstance(invalid_action, str) else None
    if match is None:
        raise ValueError(f"invalid_action must be 'fallback', 'retry:K' (K from 1 to 999) or 'terminate', "
                         f"actually {invalid_action!r}")
    return "fallback", int(match.group(1))


@functools.cache
def _anchors(env_name: str, base_kwargs: str, text_options: str) -> tuple[float, float] | None:
    """Mean returns of the random policy and the expert over the L2/L4 trajectory episodes (cached on disk)."""
    kwargs, options = json.loads(base_kwargs), json.loads(text_options)
    random_returns = fewshot_trajectories(env_name, "random", base_kwargs=kwargs, text_options=options).returns
    expert_returns = fewshot_trajectories(env_name, "expert", base_kwargs=kwargs, text_options=options).returns
    return float(np.mean(random_returns)), float(np.mean(expert_returns))


class ChatEnv:
    """A TextGym task as a conversation with per-turn rewards (see the module docs for the whole API).

    Args:
        env_id: a config name (``"cartpole"``) or text id (``"TextGym-CartPole-v0"``).
        level: knowledge level 1, 2, 4 or 5 (3 is a protocol across episodes, not a training level).
        action_format: ``"lenient"``, ``"strict"`` or ``"tool"``.
        invalid_action: ``"fallback"``, ``"retry:K"`` or ``"terminate"``.
        format_penalty: subtracted from the reward of every invalid reply (>= 0).
        history: ``"all"``, an int ``k`` >= 1 (the last ``k`` steps) or ``0`` (none).
        **env_kwargs: for ``gym.make`` of the text env.

    Raises:
        ValueError: for an unknown env, level 3 or an unknown level, or a bad option; each names what is allowed.

    Example:
        >>> env = ChatEnv("cartpole", action_format="strict")
        >>> messages, info = env.reset(seed=0)
        >>> [m["role"] for m in messages]
        ['system', 'user']
        >>> new_messages, reward, terminated, truncated, info = env.step("<action>push left</action>")
        >>> info["parsed_action"], info["invalid_action"], reward
        ('1: push left', False, 1.0)
    """

    def __init__(self, env_id: str, level: int = 1, *, action_format: str = "lenient",
                 invalid_action: str = "fallback", format_penalty: float = 0.0, history: int | str = "all",
                 **env_kwargs: Any) -> None:
        entry = env_entry(env_id)
        training_levels = [spec.level for spec in LEVELS.values() if not spec.self_experience]
        if level not in training_levels or isinstance(level, bool):
            what = ("(learning from the agent's own earlier episodes) is a protocol across episodes, not a training "
                    "level" if level in LEVELS and LEVELS[level].self_experience else "is not a level")
            raise ValueError(f"level {level!r} {what}: use level {', '.join(map(str, training_levels[:-1]))} or "
                             f"{training_levels[-1]}")
        if action_format not in ACTION_FORMATS:
            raise ValueError(f"action_format must be one of {', '.join(ACTION_FORMATS)}, actually {action_format!r}")
        self.on_invalid, self.max_retries = _invalid_action_rule(invalid_action)
        if (isinstance(format_penalty, bool) or not isinstance(format_penalty, int | float)
                or not math.isfinite(format_penalty) or format_penalty < 0):
            raise ValueError(f"format_penalty must be a finite number >= 0, actually {format_penalty!r}")
        if history != "all" and (isinstance(history, bool) or not isinstance(history, int) or history < 0):
            raise ValueError(f"history must be 'all', an int k >= 1 (the last k steps) or 0 (one self-contained "
                             f"prompt per step), actually {history!r}")
        self.env_id = entry.text_id
        self.level = level
        self.action_format = action_format
        self.invalid_action = invalid_action
        self.format_penalty = float(format_penalty)
        self.history = history
        # A max_episode_steps cap is applied outside the text env: without this its text states the registered limit.
        self.env = state_step_limit(gym.make(entry.text_id, level=level, **env_kwargs))
        self._limit_changed = ("max_episode_steps" in env_kwargs
                               and env_kwargs["max_episode_steps"] != gym.spec(entry.text_id).max_episode_steps)
        self.conversation = Conversation(None if history == "all" else int(history))
        self._system: Message | None = None
        self._reset_info: dict[str, Any] = {}
        self._state = ""
        self._retries = 0
        self._step_rewards: list[float] | None = None  # None: no episode running
        self._env_return = 0.0

    @functools.cached_property
    def text_env(self) -> TextEnv:
        """The :class:`~textgym.wrapper.TextEnv` inside ``gym.make``'s wrappers."""
        env: Any = self.env
        while not isinstance(env, TextEnv):
            env = env.env
        return env

    @property
    def translator(self) -> Translator:
        """The translator of the text env inside."""
        return self.text_env.translator

    @functools.cached_property
    def action_spec(self) -> dict[str, Any]:
        """The action set as data (the reset info's ``action_spec``): fixed for the env's life."""
        return self.translator.action_spec()

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools a model may call: the ``act`` tool under ``action_format="tool"``, else none."""
        return [act_tool(self.action_spec)] if self.action_format == "tool" else []

    def request(self) -> str:
        """How to reply on each step, in this action format."""
        spec = self.action_spec
        if self.action_format != "strict":
            return render(f"chat/format_{self.action_format}.j2")
        example: Any = (spec["names"][0] if spec["type"] == "discrete" else
                        round((spec["low"] + spec["high"]) / 2, spec["digits"]) if spec["type"] == "continuous" else
                        dict.fromkeys(spec["names"], 0.0))
        as_tag = example if spec["type"] == "discrete" else json.dumps(example)
        return render("chat/format_strict.j2", example=as_tag, example_json=json.dumps(example))

    @property
    def messages(self) -> list[Message]:
        """The next prompt: the system message and the shown turns (with ``history="all"`` the whole episode)."""
        if self._system is None:
            raise RuntimeError("ChatEnv.messages before reset()")
        return [self._system, *self.conversation.messages(self._state)]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list[Message],
                                                                                            dict[str, Any]]:
        """Start an episode: the system message and the first user turn, and the env's reset info plus ``tools``."""
        observation, info = self.env.reset(seed=seed, options=options)
        if self._system is None:  # the briefing and request are the same in every episode of this env
            content = render("chat/system.j2", briefing=briefing(info), request=self.request())
            self._system = {"role": "system", "content": content}
        self.conversation.clear()
        self._state = observation
        self._retries = 0
        self._step_rewards, self._env_return = [], 0.0
        self._reset_info = {**info, "observation": observation, "tools": self.tools}
        return self.messages, dict(self._reset_info)

    def step(self, reply: object) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        """Read ``reply`` (text, a tool call or a list of them) and answer it; see the module docs."""
        if self._step_rewards is None:
            raise RuntimeError("ChatEnv.step() with no episode running: call reset() first")
        message = _reply_message(reply)
        env_text = self._read(message)
        invalid = env_text is None
        penalty = self.format_penalty if invalid else 0.0
        info: dict[str, Any] = {"observation": self._state, "raw_obs": None, "parsed_action": None,
                                "env_action": None, "invalid_action": invalid, "env_reward": 0.0}
        if invalid and self._retries < self.max_retries:
            self._retries += 1
            correction = render("chat/correction.j2", request=self.request(),
                                attempts_left=self.max_retries - self._retries)
            new_messages = answer(message, correction)
            self.conversation.pending += [message, *new_messages]
            return self._finish_turn(new_messages, -penalty, False, False, info)
        if invalid and self.on_invalid == "terminate":
            self.conversation.pending.append(message)
            return self._finish_turn([], -penalty, False, True, info)
        played_in = self._state
        observation, env_reward, terminated, truncated, env_info = self.env.step(env_text or "")
        env_reward = float(env_reward)
        self._env_return += env_reward
        self.conversation.record(played_in, message, env_reward, bool(env_info["invalid_action"]))
        self._state, self._retries = observation, 0
        info.update(observation=observation, raw_obs=env_info["raw_obs"], env_action=_plain(env_info["action"]),
                    parsed_action=None if invalid else env_info["action_text"], env_reward=env_reward)
        new_messages = self.conversation.env_turn(len(self.conversation), observation)
        return self._finish_turn(new_messages, env_reward - penalty, bool(terminated), bool(truncated), info)

    def _read(self, message: Message) -> str | None:
        """The text the env should play for ``message``, or ``None`` when it names no valid action."""
        if self.action_format == "tool":
            return _tool_action(message, self.action_spec)
        text = _reply_text(message)
        if self.action_format == "strict":
            return parse_strict_reply(text, self.action_spec)
        return text if self.translator.parse_action(text).valid else None

    def _finish_turn(self, new_messages: list[Message], reward: float, terminated: bool, truncated: bool,
                     info: dict[str, Any]) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        assert self._step_rewards is not None
        self._step_rewards.append(reward)
        info["step_reward"] = reward
        if terminated or truncated:
            info.update({"return": float(sum(self._step_rewards)), "step_rewards": list(self._step_rewards),
                         "env_return": self._env_return, "normalized_return": self.normalized(self._env_return)})
            self._step_rewards = None
        return new_messages, reward, terminated, truncated, info

    def reference_returns(self) -> tuple[float, float] | None:
        """The (random, expert) anchors of :meth:`normalized`, or ``None``.

        ``None`` where TextGym lacks an expert for this task or the step limit differs from the registered one (the
        anchors' episodes used that one).
        """
        if self._limit_changed or not self.translator.has_expert:
            return None
        text_env = self.text_env
        return _anchors(self.translator.name, json.dumps(text_env.base_kwargs, sort_keys=True, default=repr),
                        json.dumps(self.translator.options, sort_keys=True, default=repr))

    def normalized(self, env_return: float) -> float | None:
        """``env_return`` with the random policy's mean return at 0 and the expert's at 1 (``None`` without both)."""
        anchors = self.reference_returns()
        if anchors is None or anchors[1] == anchors[0]:
            return None
        return (env_return - anchors[0]) / (anchors[1] - anchors[0])

    def close(self) -> None:
        """Close the env inside."""
        self.env.close()
