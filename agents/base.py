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

Public methods do the bookkeeping (steps, invalid replies, token usage, the call log); subclasses
override the ``_reset`` / ``_act`` / ``_end_episode`` hooks.

**Levels gate learning, here and nowhere else.** Only a level whose knowledge grants ``self_experience``
(L3) lets an agent learn from its own earlier episodes. At every other level each episode of a stream is an
independent trial, for every agent, users' own included:

* :meth:`Agent.reset` puts every attribute named in :attr:`Agent.state_attributes` back to the value it had
  right after the agent was built (a snapshot taken once construction finishes, whatever ``__init__`` does),
  so whatever ``_end_episode`` learned is gone before the next episode starts;
* :class:`EpisodeContext` shows the agent one trial of one (``trial_index`` 0, ``trials_total`` 1,
  ``episodes_left`` 0), so nothing in a prompt says "episode 2 of 5", and the library's agents make no
  learning calls (summaries, reflections, insights) when ``episodes_left`` is 0.

So keep everything an agent carries from one episode to the next in ``state_attributes`` (resuming an
interrupted stream restores exactly those, too); an attribute created after construction is reported once
with a warning, since it would escape both. Offline knowledge (the level's trajectories and teaching in
``context.knowledge``) is not self-experience: it arrives with every episode's context.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import re
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import jinja2

from agents.budget import keep_head_and_tail
from agents.llm.protocol import ChatModel, Usage
from agents.parsing import action_json_schema, parse_reply
from textgym.chat import Conversation, briefing
from textgym.chat import history_start as first_shown_step
from textgym.templating import PACKAGE_DIR as TEXTGYM_DIR
from textgym.templating import FlatGlobalsEnvironment, fixed

__all__ = ["Agent", "LanguageAgent", "EpisodeContext", "Transition", "EpisodeResult", "render_trajectory",
           "render_lines_within", "render_prompt", "prompt_templates_fingerprint", "TEACHING_KEYS"]

logger = logging.getLogger(__name__)
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
CHAT_TEMPLATES_DIR = TEXTGYM_DIR / "templates" / "chat"
"""The env-side half of every prompt (the briefing, the step turns): :mod:`textgym.chat`'s templates."""
AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
TEACHING_KEYS = ("guidance", "teaching_examples")
"""Knowledge keys that carry a level's own hand-written teaching (L5): method demonstrations step aside."""


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
        """The context a ChatEnv's (or TextEnv's) reset ``info`` describes."""
        return cls(info["game_description"], info["goal_description"], info["action_description"],
                   info["action_spec"], info["knowledge"], episode_index, episodes_total)

    def briefing(self, show_fewshot: bool = True) -> str:
        """The descriptions and the level's knowledge, as :func:`textgym.chat.briefing` writes them."""
        return briefing(vars(self), show_fewshot)

    @property
    def self_experience(self) -> bool:
        """Whether the level lets the agent learn from its own earlier episodes (L3)."""
        return bool(self.knowledge.get("self_experience"))

    @property
    def trial_index(self) -> int:
        """This episode's place among the trials that share what they learn.

        0 at levels without self-experience, where every episode is an independent first trial.
        """
        return self.episode_index if self.self_experience else 0

    @property
    def trials_total(self) -> int:
        """Trials that share what they learn: the stream's episodes at L3, else 1."""
        return self.episodes_total if self.self_experience else 1

    @property
    def episodes_left(self) -> int:
        """Later episodes that may use what this one teaches (0 at levels without self-experience)."""
        return max(0, self.trials_total - self.trial_index - 1)


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


class _SnapshotAfterInit(ABCMeta):
    """Takes :meth:`Agent._snapshot_initial_state` once the outermost ``__init__`` has returned.

    So the snapshot holds what a subclass sets up too, and no subclass has to remember to call anything.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        agent = super().__call__(*args, **kwargs)
        agent._snapshot_initial_state()
        return agent


class Agent(metaclass=_SnapshotAfterInit):
    """Base of every agent, with or without an LLM.

    Args:
        llm: the shared client (``None`` for agents that need no model).
        seed: seed for the agent's own randomness.
        name: the agent's name in run dirs and results (default: the class's :attr:`name`); configs that
            vary one class (``conf/agent/exe_no_insight.yaml``) set it so their results stay apart.
    """

    name: str = "agent"
    uses_llm: ClassVar[bool] = True
    """Whether the runner must provide an LLM client (it starts no model server for agents that don't)."""
    state_attributes: ClassVar[tuple[str, ...]] = ()
    """Attributes that carry what the agent learned across episodes (JSON-serialisable). A resumed run
    restores them with :meth:`load_state` so an interrupted stream continues where it stopped; at levels
    without self-experience :meth:`reset` puts them back to their values after construction."""

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, name: str | None = None) -> None:
        if name is not None:
            if not isinstance(name, str) or not AGENT_NAME.fullmatch(name):
                raise ValueError(f"agent name must be letters, digits, '_', '-' or '.' (starting with a letter or "
                                 f"digit), actually {name!r}")
            self.name = name
        self.llm = llm
        self.seed = seed
        self.context: EpisodeContext | None = None
        self.transitions: list[Transition] = []
        self.usage = Usage()
        self.invalid_replies = 0
        self.steps = 0
        self.last_replies: list[str] = []  # raw model texts of the latest action request, for the step records
        self.calls: list[dict[str, Any]] = []  # LLM call records since the runner last took them (take_calls)
        self._notes: dict[str, Any] = {}  # what this episode produced, for episode_notes()
        self._initial_state: dict[str, Any] = {}
        self._initial_attributes: frozenset[str] = frozenset()
        self._warned_new_attributes = False

    def _snapshot_initial_state(self) -> None:
        self._initial_state = copy.deepcopy(self.state())
        self._initial_attributes = frozenset(vars(self))

    async def reset(self, context: EpisodeContext) -> None:
        """Start an episode; ``context`` carries descriptions and the level's knowledge.

        At a level without self-experience this first forgets everything learned (see the module docs).
        """
        self._check_new_attributes()
        self.context = context
        self.transitions = []
        self._notes = {}
        if not context.self_experience:
            for attribute, value in self._initial_state.items():
                setattr(self, attribute, copy.deepcopy(value))
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
        """The episode is over: where learning across episodes happens.

        It is undone before the next episode at levels without self-experience.
        """
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

    def take_calls(self) -> list[dict[str, Any]]:
        """The LLM call records (shared interface 1) made since the last take, in order; clears them."""
        calls, self.calls = self.calls, []
        return calls

    def episode_notes(self) -> dict[str, Any]:
        """What the agent produced or learned around the current episode, JSON-able, for the results.

        (EXE: ``suggestion``, ``summary``, ``insight``; Reflexion: ``reflection``; the other language agents:
        ``experience_summary`` after an L3 trial that later ones read, else ``{}``).
        Read after :meth:`end_episode`; :meth:`reset` starts them afresh.
        """
        return copy.deepcopy(self._notes)

    def _check_new_attributes(self) -> None:
        new = sorted(set(vars(self)) - self._initial_attributes)
        if new and self._initial_attributes and not self._warned_new_attributes:
            self._warned_new_attributes = True
            logger.warning("%s set attributes %s after construction; if they carry anything across episodes, "
                           "create them in __init__ and list them in state_attributes, or they are neither "
                           "reset between independent trials nor restored on resume", type(self).__name__, new)

    # Hooks -------------------------------------------------------------------------------------
    async def _reset(self, context: EpisodeContext) -> None:
        """Per-episode setup (optional)."""

    @abstractmethod
    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        """Choose the action text."""

    def _observe(self, transition: Transition) -> None:
        """React to a step (optional)."""

    async def _end_episode(self, result: EpisodeResult) -> None:
        """Learn from the finished episode (optional).

        ``self.context.episodes_left`` says whether any later episode may use it.
        """


@functools.cache
def prompt_templates_fingerprint() -> str:
    """A short hash of every prompt template in ``agents/prompts`` and of the env-side chat templates.

    The env-side ones are those they build on (``textgym/templates/chat``). Results made under other prompts belong to
    another protocol, so a run records it and refuses to resume under a different one.
    """
    digest = hashlib.sha256()
    for root, prefix in ((PROMPTS_DIR, ""), (CHAT_TEMPLATES_DIR, "textgym/chat/")):
        for path in sorted(root.rglob("*.j2")):
            name = prefix + path.relative_to(root).as_posix()
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _prompt_environment() -> jinja2.Environment:
    env = FlatGlobalsEnvironment(loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)), undefined=jinja2.StrictUndefined,
                                 trim_blocks=True, lstrip_blocks=True, autoescape=False,
                                 auto_reload=False)  # package files: no mtime check on every render
    env.filters["fixed"] = fixed  # the env suite's number format, so prompts and observations agree
    return env


@functools.cache
def _prompt_template(name: str) -> jinja2.Template:
    return _prompt_environment().get_template(name)  # kept by name, as the env suite's templates are


def render_prompt(template: str, **values: Any) -> str:
    """Render ``agents/prompts/<template>`` (e.g. ``"common/system.j2"``) with ``values``, outer whitespace stripped."""
    return _prompt_template(template).render(**values).strip()


def _step_line(number: int, step: Transition) -> str:
    invalid = " (invalid, fallback played)" if step.invalid_action else ""
    return f"{number}. {step.observation} Action: {step.action}{invalid} -> reward {fixed(step.reward, 2)}."


def render_trajectory(result: EpisodeResult, budget_tokens: int) -> str:
    """A finished episode as text, every step if they fit ``budget_tokens`` (see :mod:`agents.budget`).

    Else its first and last steps with the number left out in between: the one rendering of a whole
    trajectory, shared by EXE's summary, Reflexion's reflection and the L3 trial summary.
    """
    steps = result.transitions
    lines = keep_head_and_tail([_step_line(i, step) for i, step in enumerate(steps, 1)], budget_tokens)
    return render_prompt(
        "common/trajectory.j2", result=result, lines=lines,
        final_state=steps[-1].next_observation if steps else None,
        ended=("it terminated" if steps[-1].terminated else "it stopped at the step limit") if steps else "")


class LanguageAgent(Agent):
    """Base of the LLM agents: prompt rendering, constrained action requests, the L3 trial memory.

    Prompts are Jinja2 templates in ``agents/prompts/<name>/`` (shared parts in ``prompts/common/``) on top of
    the env-side parts every consumer of a text env shares (:mod:`textgym.chat`: the briefing and the episode
    as turns, as :class:`~textgym.chat.ChatEnv` gives them to trainers), laid out so that each request of an
    episode extends the one before it (servers re-read only what was added):

    * the system message holds what is fixed for an episode: the method's demonstrations (L1-L4), the
      briefing (descriptions, the level's offline knowledge: trajectories at L2/L4, teaching at L5) and the
      memory of earlier trials (L3: an LLM summary of each, ``purpose="experience_summary"``);
    * then the episode as a conversation (a :class:`~textgym.chat.Conversation`), one exchange per recent
      transition (the last ``history_window``): a user turn with the reward of the step before and the state,
      and an assistant turn naming the action played (:meth:`history_reply`). A turn's text never changes once
      written, so the next request repeats it token for token;
    * last, the current step's turn: the same step text, and anything only this step adds (self-ask's
      questions). The method's request (its ``act.j2``: what to do each step, in what reply format) is the
      same on every step, so it closes the system message of action requests rather than each turn.

    Every request names its ``purpose`` and its records land in :attr:`Agent.calls`.

    Args:
        llm: the shared client.
        seed: agent seed.
        history_window: recent transitions shown as conversation turns in each action request (0: none).
        history_trim: ``"sliding"`` shows exactly the last ``history_window`` transitions; ``"block"`` shows
            at least that many (up to twice as many) and moves the start only every ``history_window`` steps,
            so a prefix cache that cannot shift cached chunks (vLLM, OpenAI) still reuses the whole history
            between trims; llama.cpp's ``n_cache_reuse`` reuses a sliding window as well.
        memory_size: earlier trials remembered at L3 (and reflections, for Reflexion).
        action_max_tokens: completion budget of an action reply (a thought field adds its own).
        demonstrations: show the method's worked examples on unrelated tasks (L1-L4; a level with its own
            teaching, L5, gets none); ``False`` drops them.
        trajectory_budget_tokens: the most tokens of a finished trajectory shown when summarising or
            reflecting on it (estimated as in :mod:`agents.budget`; head and tail kept, the middle counted).
        experience_max_tokens: completion budget of an L3 trial summary.
        name: see :class:`Agent`.
    """

    name = "language"
    state_attributes: ClassVar[tuple[str, ...]] = ("experience",)
    demonstrations_template: ClassVar[str | None] = None
    """``prompts/<method>/demonstrations.j2``: worked examples of the method, in its own reply format."""
    shows_fewshot_examples: ClassVar[bool] = True
    """Whether the level's offline trajectories go into the system prompt as text (EXE summarises them)."""

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, history_window: int = 10,
                 memory_size: int = 5, action_max_tokens: int = 48, demonstrations: bool = True,
                 trajectory_budget_tokens: int = 2000, experience_max_tokens: int = 192,
                 history_trim: str = "sliding", name: str | None = None) -> None:
        if llm is None:
            raise ValueError(f"{type(self).__name__} needs an llm client")
        if memory_size < 1 or history_window < 0 or trajectory_budget_tokens < 1:
            raise ValueError(f"memory_size must be >= 1, history_window >= 0 and trajectory_budget_tokens >= 1, "
                             f"actually memory_size={memory_size}, history_window={history_window}, "
                             f"trajectory_budget_tokens={trajectory_budget_tokens}")
        if history_trim not in ("sliding", "block"):
            raise ValueError(f"history_trim must be 'sliding' or 'block', actually {history_trim!r}")
        super().__init__(llm, seed, name)
        self.llm: ChatModel = llm
        self.history_window = history_window
        self.history_trim = history_trim
        self.memory_size = memory_size
        self.action_max_tokens = action_max_tokens
        self.demonstrations = demonstrations
        self.trajectory_budget_tokens = trajectory_budget_tokens
        self.experience_max_tokens = experience_max_tokens
        # L3: {"episode", "return", "steps", "text"} per earlier trial, oldest first.
        self.experience: list[dict[str, Any]] = []
        self.turns = Conversation(history_window, history_trim)
        """This episode's steps as chat turns, each rendered once (later requests repeat them)."""
        self._rendered: dict[tuple[Any, ...], str] = {}  # this episode's renders (system prompts too), by values
        # The last system prompt rendered, by everything it is made of: the next episode's is most often the same.
        self._last_system: tuple[tuple[Any, ...], str] | None = None
        self._observation = ""  # the state of the step being acted on

    async def reset(self, context: EpisodeContext) -> None:
        """Start an episode: no turns, nothing rendered yet."""
        self.turns.clear()
        self._rendered = {}
        await super().reset(context)

    async def act(self, observation: str, info: dict[str, Any]) -> str:
        """Keep the step's observation for the prompts, then act as :meth:`Agent.act` does."""
        self._observation = observation
        return await super().act(observation, info)

    # Prompts -----------------------------------------------------------------------------------
    def render(self, template: str, **values: Any) -> str:
        """Render ``prompts/<template>`` (e.g. ``"naive/act.j2"``) with the episode context available.

        A request that is the same on every step of an episode (most methods' ``act.j2``) is rendered once.
        """
        assert self.context is not None
        context = self.context
        try:
            key = (template, tuple(sorted(values.items())))
            hash(key)
        except TypeError:  # values such as lists: render every time
            key = None
        if key is not None and key in self._rendered:
            return self._rendered[key]
        text = render_prompt(template, ctx=context, knowledge=context.knowledge, **values)
        if key is not None:
            self._rendered[key] = text
        return text

    def history_start(self) -> int:
        """The first transition the action request shows.

        The last ``history_window`` of this episode are shown (``"block"`` trimming: from the latest multiple of
        ``history_window`` that leaves at least that many).
        """
        return first_shown_step(len(self.transitions), self.history_window, self.history_trim)

    def step_text(self, index: int) -> str:
        """The user turn of step ``index`` of this episode.

        The reward of the step before (when there is a history to show) and the state the agent acted in. Rendered once
        per step and kept, so every later request that shows the step repeats the same text.
        """
        self._record_transitions()
        return self.turns.step_text(index, self._observation)

    def _record_transitions(self) -> None:
        """Bring :attr:`turns` up to date with :attr:`transitions` (each step's exchange is built once)."""
        turns = self.turns
        while len(turns) < len(self.transitions):
            transition = self.transitions[len(turns)]
            turns.record(transition.observation, {"role": "assistant", "content": self.history_reply(transition)},
                         transition.reward, transition.invalid_action)

    def history_reply(self, transition: Transition) -> str:
        """The assistant turn that stands for an earlier step.

        The action played, in the reply format of the action requests (JSON here; PAL overrides). Only the action, as
        the protocol's history shows; the reasoning a method wrote before it is not repeated.
        """
        if transition.invalid_action:
            return '{"action": null}'
        assert self.context is not None
        value = transition.action if self.context.action_spec["type"] != "discrete" else json.dumps(transition.action)
        return f'{{"action": {value}}}'

    def conversation(self, user_prompt: str) -> list[dict[str, str]]:
        """The episode's turns for an action request.

        One exchange per recent transition, then this step's turn (its step text and ``user_prompt``, the
        method's request).
        """
        self._record_transitions()
        return self.turns.messages(self._observation, user_prompt)

    def demonstrations_text(self) -> str:
        """The method's demonstrations, when this agent and level show them (else ``""``)."""
        assert self.context is not None
        if (not self.demonstrations or self.demonstrations_template is None
                or any(self.context.knowledge.get(key) for key in TEACHING_KEYS)):
            return ""
        return self.render(self.demonstrations_template)

    def memory_prompt(self) -> str:
        """Agent-specific memory for the end of the system prompt (fixed within an episode); ``""`` here."""
        return ""

    def system_prompt(self, memory: bool = True, request: str = "") -> str:
        """The system prompt: demonstrations, descriptions, level knowledge and more.

        With ``memory``, what earlier trials taught; for action requests, the method's ``request`` (what to do
        on each step, in what reply format).

        Rendered once per episode, memory state and request: it is the same on every step, and re-rendering it
        (the demonstrations, the level's knowledge) was a good part of our own CPU per decision.
        """
        assert self.context is not None
        memory_text = self.memory_prompt() if memory else ""
        # The memory of earlier trials changes only between episodes (when this cache is emptied): its size keys it.
        key = ("system", memory, memory_text, len(self.experience) if memory else 0, request)
        if key not in self._rendered:
            # Across episodes, by its inputs compared by value (the env hands the same texts on every reset, so
            # this is mostly identity checks): most episodes of a stream have the same system prompt.
            context = self.context
            inputs = (key, context.game_description, context.goal_description, context.action_description,
                      context.action_spec, context.knowledge, tuple(self.experience) if memory else None)
            if self._last_system is None or self._last_system[0] != inputs:
                self._last_system = inputs, self.render(
                    "common/system.j2", demonstrations=self.demonstrations_text(),
                    briefing=context.briefing(self.shows_fewshot_examples),
                    experience=self.experience if memory else [], memory=memory_text, request=request)
            self._rendered[key] = self._last_system[1]
        return self._rendered[key]

    def messages(self, user_prompt: str, memory: bool = True, episode: bool = False,
                 request: str = "") -> list[dict[str, str]]:
        """The system prompt and ``user_prompt``.

        With ``episode`` the episode's recent turns come first and the
        last turn is this step's state followed by ``user_prompt`` (see :meth:`conversation`); ``request``, the
        same on every step, closes the system prompt instead, where a prompt cache reads it once.
        """
        turns = self.conversation(user_prompt) if episode else [{"role": "user", "content": user_prompt}]
        return [{"role": "system", "content": self.system_prompt(memory, request)}, *turns]

    def trajectory_text(self, result: EpisodeResult) -> str:
        """``result`` within :attr:`trajectory_budget_tokens` (see :func:`render_trajectory`)."""
        return render_trajectory(result, self.trajectory_budget_tokens)

    # LLM calls ---------------------------------------------------------------------------------
    async def ask(self, messages: list[dict[str, str]], *, purpose: str = "action", **kwargs: Any) -> list[str]:
        """Raw completion texts; usage is added to :attr:`usage`, the call records to :attr:`calls`.

        The agent is the request's session: its prompts grow from one another, so the server may keep
        them on one slot (see :meth:`LLMClient.complete`).
        """
        completion = await self.llm.complete(messages, purpose=purpose, session=id(self), **kwargs)
        self.usage += completion.usage
        self.calls.extend(completion.records)
        return completion.texts

    async def ask_text(self, user_prompt: str, max_tokens: int = 160, *, purpose: str = "text",
                       memory: bool = True, temperature: float | None = None, episode: bool = False) -> str:
        """A free-text answer (reflections, suggestions, summaries).

        ``memory=False`` leaves the memory of earlier trials out of the system prompt; ``episode=True`` asks within the
        step's conversation.
        """
        texts = await self.ask(self.messages(user_prompt, memory, episode), purpose=purpose, max_tokens=max_tokens,
                               temperature=temperature)
        return texts[0].strip() if texts else ""

    async def ask_action(self, request: str, thought_chars: int = 0, n: int = 1,
                         temperature: float | None = None, *, purpose: str = "action",
                         step_prompt: str = "") -> list[str | None]:
        """``n`` replies constrained to valid actions, parsed; ``None`` marks an unparsable reply (counted).

        ``request`` is the method's ask, the same on every step (it closes the system prompt, so a server's
        prompt cache reads it once per episode); ``step_prompt`` is what only this step adds (it follows the
        state in the step's turn).
        """
        assert self.context is not None
        schema = action_json_schema(self.context.action_spec, thought_chars)
        budget = self.action_max_tokens + thought_chars // 3
        texts = await self.ask(self.messages(step_prompt, episode=True, request=request), purpose=purpose,
                               json_schema=schema, n=n, max_tokens=budget, temperature=temperature)
        self.last_replies = texts
        return [self.parse_action(text) for text in texts]

    def parse_action(self, text: str) -> str | None:
        """The action a reply names, or ``None`` (counted in :attr:`invalid_replies`)."""
        assert self.context is not None
        parsed = parse_reply(text, self.context.action_spec)
        if not parsed.valid:
            self.invalid_replies += 1
        return parsed.action

    async def ask_one_action(self, request: str, thought_chars: int = 0, step_prompt: str = "") -> str:
        """One constrained action request (see :meth:`ask_action`); the fallback text when the reply is unusable."""
        action = (await self.ask_action(request, thought_chars=thought_chars, step_prompt=step_prompt))[0]
        return action if action is not None else self.fallback_action()

    def fallback_action(self) -> str:
        """Sent when no reply was usable; the env plays its documented fallback for it and flags it."""
        return "no valid action"

    # Learning across episodes ----------------------------------------------------------------------
    async def _end_episode(self, result: EpisodeResult) -> None:
        """L3: an LLM summary of the trial joins the memory the next trials' system prompts show."""
        assert self.context is not None
        if not self.context.episodes_left:
            return
        summary = await self.ask_text(self.render("common/summarize_trial.j2", trajectory=self.trajectory_text(result)),
                                      self.experience_max_tokens, purpose="experience_summary", memory=False)
        note = {"episode": result.episode_index, "return": result.episode_return, "steps": result.length,
                "text": summary}
        self.experience = [*self.experience, note][-self.memory_size:]
        self._notes["experience_summary"] = summary


def render_lines_within(text: str, budget_tokens: int) -> str:
    """``text`` with the middle of its lines left out (and counted) if it is over ``budget_tokens``."""
    return "\n".join(keep_head_and_tail(text.splitlines(), budget_tokens, unit="lines"))
