"""The agent interface (RL-style: act per step, learn per episode) and the base of all LLM agents.

A runner drives any :class:`Agent` like this, one agent instance per stream of episodes; many
streams run at once in one event loop, sharing one :class:`~agents.llm.client.LLMClient`::

    agent = NaiveAgent(llm=client)
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        await agent.reset(EpisodeContext.from_reset_info(info, episode, episodes))
        while not done:
            action = await agent.act(obs, info)
            next_obs, reward, terminated, truncated, info = env.step(action)
            agent.observe(Transition(obs, action, reward, next_obs, terminated, truncated, info["invalid_action"]))
            ...
        await agent.end_episode(EpisodeResult(episode, total_return, steps, transitions))

Public methods do the bookkeeping (steps, invalid replies, token usage); subclasses override the
``_reset`` / ``_act`` / ``_end_episode`` hooks.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jinja2

from agents.llm.client import LLMClient, Usage
from agents.parsing import action_json_schema, parse_reply
from textgym.templating import fixed

__all__ = ["Agent", "LanguageAgent", "EpisodeContext", "Transition", "EpisodeResult"]

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


@dataclass
class EpisodeContext:
    """What an agent learns at the start of an episode (from the env's reset info)."""

    game_description: str
    goal_description: str
    action_description: str
    action_spec: dict[str, Any]
    knowledge: dict[str, Any]
    episode_index: int = 0
    episodes_total: int = 1

    @classmethod
    def from_reset_info(cls, info: dict[str, Any], episode_index: int = 0, episodes_total: int = 1) -> EpisodeContext:
        return cls(info["game_description"], info["goal_description"], info["action_description"],
                   info["action_spec"], info["knowledge"], episode_index, episodes_total)

    @property
    def episodes_left(self) -> int:
        """Episodes after this one in the stream."""
        return max(0, self.episodes_total - self.episode_index - 1)


@dataclass
class Transition:
    """One step as the agent saw it."""

    observation: str
    action: str
    reward: float
    next_observation: str
    terminated: bool
    truncated: bool
    invalid_action: bool = False


@dataclass
class EpisodeResult:
    """A finished episode."""

    episode_index: int
    episode_return: float
    length: int
    transitions: list[Transition] = field(default_factory=list)


class Agent(ABC):
    """Base of every agent, with or without an LLM.

    Args:
        llm: the shared client (``None`` for agents that need no model).
        seed: seed for the agent's own randomness.
    """

    name: ClassVar[str] = "agent"
    uses_llm: ClassVar[bool] = True
    """Whether the runner must provide an LLM client (it starts no model server for agents that don't)."""
    state_attributes: ClassVar[tuple[str, ...]] = ()
    """Attributes that carry what the agent learned across episodes (JSON-serialisable). A resumed run
    restores them with :meth:`load_state` so an interrupted stream continues where it stopped."""

    def __init__(self, llm: LLMClient | None = None, seed: int = 0) -> None:
        self.llm = llm
        self.seed = seed
        self.context: EpisodeContext | None = None
        self.transitions: list[Transition] = []
        self.usage = Usage()
        self.invalid_replies = 0
        self.steps = 0
        self.last_replies: list[str] = []  # raw model texts of the latest action request, for the step records

    async def reset(self, context: EpisodeContext) -> None:
        """Start an episode; ``context`` carries descriptions and the level's knowledge."""
        self.context = context
        self.transitions = []
        await self._reset(context)

    async def act(self, observation: str, info: dict[str, Any]) -> str:
        """The action text for ``observation``."""
        if self.context is None:
            raise RuntimeError(f"{type(self).__name__}.act() called before reset()")
        self.steps += 1
        self.last_replies = []
        return await self._act(observation, info)

    def observe(self, transition: Transition) -> None:
        """Record what the env answered to the last action."""
        self.transitions.append(transition)
        self._observe(transition)

    async def end_episode(self, result: EpisodeResult) -> None:
        """The episode is over: where learning across episodes happens."""
        await self._end_episode(result)

    def state(self) -> dict[str, Any]:
        """What the agent learned so far (see :attr:`state_attributes`)."""
        return {name: getattr(self, name) for name in self.state_attributes}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`; unknown keys are an error, so a renamed attribute is noticed."""
        unknown = set(state) - set(self.state_attributes)
        if unknown:
            raise ValueError(f"unknown state keys {sorted(unknown)} for {type(self).__name__}: "
                             f"expected {list(self.state_attributes)}")
        for name, value in state.items():
            setattr(self, name, value)

    # Hooks -------------------------------------------------------------------------------------
    async def _reset(self, context: EpisodeContext) -> None:
        """Per-episode setup (optional)."""

    @abstractmethod
    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        """Choose the action text."""

    def _observe(self, transition: Transition) -> None:
        """React to a step (optional)."""

    async def _end_episode(self, result: EpisodeResult) -> None:
        """Learn from the finished episode (optional)."""


@functools.cache
def _prompt_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["fixed"] = fixed  # the env suite's number format, so prompts and observations agree
    return env


class LanguageAgent(Agent):
    """Base of the LLM agents: prompt rendering, constrained action requests, L3 self-experience memory.

    Prompts are Jinja2 templates in ``agents/prompts/<name>/`` (shared parts in ``prompts/common/``).
    The system prompt holds the descriptions and whatever the level allows: few-shot trajectories
    (L2/L4/L5), guidance (L5) and, at L3, summaries of the agent's own earlier episodes.

    Args:
        llm: the shared client.
        seed: agent seed.
        history_window: recent transitions shown in each action prompt.
        memory_size: earlier episodes kept in memory (L3 and agents that learn across episodes).
        action_max_tokens: completion budget of an action reply.
    """

    name = "language"
    state_attributes = ("experience",)

    def __init__(self, llm: LLMClient | None = None, seed: int = 0, history_window: int = 4, memory_size: int = 3,
                 action_max_tokens: int = 48) -> None:
        if llm is None:
            raise ValueError(f"{type(self).__name__} needs an llm client")
        if memory_size < 1 or history_window < 0:
            raise ValueError(f"memory_size must be >= 1 and history_window >= 0, "
                             f"actually memory_size={memory_size}, history_window={history_window}")
        super().__init__(llm, seed)
        self.llm: LLMClient = llm
        self.history_window = history_window
        self.memory_size = memory_size
        self.action_max_tokens = action_max_tokens
        self.experience: list[str] = []  # L3: what earlier episodes of this stream taught

    # Prompts -----------------------------------------------------------------------------------
    def render(self, template: str, **values: Any) -> str:
        """Render ``prompts/<template>`` (e.g. ``"naive/act.j2"``) with the episode context available."""
        assert self.context is not None
        context = self.context
        return _prompt_environment().get_template(template).render(
            ctx=context, knowledge=context.knowledge,
            experience=self.experience if context.knowledge.get("self_experience") else [],
            recent=self.transitions[-self.history_window:] if self.history_window else [],
            **values,
        ).strip()

    def system_prompt(self) -> str:
        return self.render("common/system.j2")

    def messages(self, user_prompt: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system_prompt()}, {"role": "user", "content": user_prompt}]

    # LLM calls ---------------------------------------------------------------------------------
    async def ask(self, messages: list[dict[str, str]], **kwargs: Any) -> list[str]:
        """Raw completion texts; usage is added to :attr:`usage`."""
        completion = await self.llm.complete(messages, **kwargs)
        self.usage += completion.usage
        return completion.texts

    async def ask_text(self, user_prompt: str, max_tokens: int = 160) -> str:
        """A free-text answer (reflections, suggestions, summaries)."""
        texts = await self.ask(self.messages(user_prompt), max_tokens=max_tokens)
        return texts[0].strip() if texts else ""

    async def ask_action(self, user_prompt: str, thought_chars: int = 0, n: int = 1,
                         temperature: float | None = None) -> list[str | None]:
        """``n`` replies constrained to valid actions, parsed; ``None`` marks an unparsable reply (counted)."""
        assert self.context is not None
        schema = action_json_schema(self.context.action_spec, thought_chars)
        budget = self.action_max_tokens + thought_chars // 3
        texts = await self.ask(self.messages(user_prompt), json_schema=schema, n=n, max_tokens=budget,
                               temperature=temperature)
        self.last_replies = texts
        actions: list[str | None] = []
        for text in texts:
            parsed = parse_reply(text, self.context.action_spec)
            if not parsed.valid:
                self.invalid_replies += 1
            actions.append(parsed.action)
        return actions

    async def ask_one_action(self, user_prompt: str, thought_chars: int = 0) -> str:
        """One constrained action request; the fallback text when the reply is unusable."""
        action = (await self.ask_action(user_prompt, thought_chars=thought_chars))[0]
        return action if action is not None else self.fallback_action()

    def fallback_action(self) -> str:
        """Sent when no reply was usable; the env plays its documented fallback for it and flags it."""
        return "no valid action"

    # Learning across episodes ----------------------------------------------------------------------
    async def _end_episode(self, result: EpisodeResult) -> None:
        if self.context is not None and self.context.knowledge.get("self_experience"):
            self.experience.append(self.render("common/experience.j2", result=result))
            self.experience = self.experience[-self.memory_size:]
