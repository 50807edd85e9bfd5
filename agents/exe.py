"""EXEAgent: the explore-exploit guided agent of Text-Gym-Agents (suggest, act, summarize, distil), as published."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from agents.base import EpisodeContext, EpisodeResult, LanguageAgent, render_lines_within
from agents.budget import keep_newest
from agents.llm.protocol import ChatModel
from agents.parsing import split_json_object

__all__ = ["EXEAgent"]


class EXEAgent(LanguageAgent):
    """Plans exploration and exploitation per trial, and learns across trials through verified summaries.

    The cycle over the trials of a stream (several trials only at levels with self-experience, L3):

    1. before a trial (``_reset``): a *suggestion* (``purpose="suggestion"``) from the descriptions, the
       trials left, every summary so far and the insight, aiming at the best return in the *last* trial: which
       task knowledge decides the optimal policy, how to explore for it now, how to exploit what is known, and
       how to balance the two;
    2. each step: one constrained action request whose system prompt ends with the insight and the
       suggestion, and whose user prompt holds the last ``history_window`` transitions and the state; with
       ``think`` a bounded ``thought`` field (``thought_chars``) comes before the action;
    3. after every trial but the last: a *summary* (``purpose="summary"``) of the whole trajectory (within
       ``trajectory_budget_tokens``: head and tail kept, the middle counted) together with the suggestion
       that guided it; the reply starts with a JSON object of the knowledge values the suggestion asked
       about (parsed leniently; kept as raw text when it is not JSON) and goes on with the behaviour and the
       return. Then an *insight* (``purpose="insight"``) distilled from all summaries and the last insight.

    Summaries are never dropped from memory; a prompt shows the newest ones that fit
    ``memory_budget_tokens`` (tokens estimated as in :mod:`agents.budget`) and says how many older ones it
    left out. At levels with offline trajectories (L2/L4) the long-term memory starts with an LLM summary
    of each one (``purpose="trajectory_summary"``, at temperature 0 with fixed prompts, so the response cache
    replays them for free) and a first insight from them; they are computed once per stream. EXE's system
    prompt then carries those summaries instead of the raw trajectories.

    Ablations (the original's): ``use_suggestion=False`` makes no suggestion (no plan in the actor or the
    summary prompt); ``use_summary=False`` makes no summaries (the insight is distilled from the trajectory
    itself); ``use_insight=False`` makes no insight (none in any prompt); ``history_window=0`` shows no
    recent transitions. What an episode produced is in :meth:`episode_notes`: ``suggestion``, ``summary``
    (``{"episode", "return", "knowledge", "account", "text"}``) and ``insight``.

    Args:
        llm: the shared client.
        seed: agent seed.
        think: ask for a bounded ``thought`` before the action.
        thought_chars: the most characters of that thought.
        use_suggestion: make a suggestion before each trial.
        use_summary: summarize each trial.
        use_insight: distil an insight after each trial.
        suggestion_max_tokens: completion budget of a suggestion.
        summary_max_tokens: completion budget of a summary (offline trajectory summaries too).
        insight_max_tokens: completion budget of an insight.
        memory_budget_tokens: the most tokens of summaries shown in a suggestion or insight prompt.
        **kwargs: :class:`~agents.base.LanguageAgent` options (``history_window`` default 10,
            ``trajectory_budget_tokens``, ``action_max_tokens``, ``name``, ...).

    Example:
        >>> from agents.llm.client import HTTPTransport, LLMClient
        >>> agent = EXEAgent(llm=LLMClient("m", HTTPTransport("http://127.0.0.1:1/v1", api_key_env=None)))
        >>> agent.insight, agent.summaries, agent.history_window
        ('', [], 10)
    """

    name = "exe"
    state_attributes: ClassVar[tuple[str, ...]] = (*LanguageAgent.state_attributes, "summaries", "insight")
    shows_fewshot_examples = False  # they reach EXE as summaries in its memory

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, think: bool = True, thought_chars: int = 300,
                 use_suggestion: bool = True, use_summary: bool = True, use_insight: bool = True,
                 suggestion_max_tokens: int = 256, summary_max_tokens: int = 256, insight_max_tokens: int = 256,
                 memory_budget_tokens: int = 1500, **kwargs: Any) -> None:
        if think and thought_chars < 1:
            raise ValueError(f"thought_chars must be >= 1 when think is on, actually {thought_chars}")
        if memory_budget_tokens < 1:
            raise ValueError(f"memory_budget_tokens must be >= 1, actually {memory_budget_tokens}")
        super().__init__(llm, seed, **kwargs)
        self.think = think
        self.thought_chars = thought_chars if think else 0
        self.use_suggestion = use_suggestion
        self.use_summary = use_summary
        self.use_insight = use_insight
        self.suggestion_max_tokens = suggestion_max_tokens
        self.summary_max_tokens = summary_max_tokens
        self.insight_max_tokens = insight_max_tokens
        self.memory_budget_tokens = memory_budget_tokens
        self.summaries: list[dict[str, Any]] = []  # this stream's trials, oldest first
        self.insight = ""
        self.suggestion = ""
        # Offline memory (L2/L4), derived from the level's knowledge alone, so it is not learned state.
        self._offline_key: tuple[str, ...] = ()
        self._offline_summaries: list[dict[str, Any]] = []
        self._offline_insight = ""

    # Memory ------------------------------------------------------------------------------------
    def memory_lines(self) -> tuple[list[str], int]:
        """Offline and own summaries as prompt lines within :attr:`memory_budget_tokens`, newest kept first.

        Also returns how many older ones were left out.
        """
        return keep_newest([self._summary_line(note) for note in [*self._offline_summaries, *self.summaries]],
                           self.memory_budget_tokens)

    def _summary_line(self, note: dict[str, Any]) -> str:
        if note["episode"] is None:
            earned = f", return {note['return']:.2f}" if note["return"] is not None else ""
            head = f"Example episode {note['example'] + 1} ({note['policy']} policy{earned})"
        else:
            head = f"Trial {note['episode'] + 1} (return {note['return']:.2f})"
        if note["knowledge"] is None:
            return f"{head}: {note['text']}"
        values = "; ".join(f"{key} = {value if isinstance(value, str) else json.dumps(value)}"
                           for key, value in note["knowledge"].items())
        return f"{head}: knowledge: {values or 'none'}. {note['account']}".strip()

    def memory_prompt(self) -> str:
        """The insight and suggestion carried to the next trial, as the system prompt shows them."""
        return self.render("exe/memory.j2", insight=self.insight if self.use_insight else "",
                           suggestion=self.suggestion if self.use_suggestion else "")

    async def _summarize(self, trajectory: str, suggestion: str, purpose: str) -> dict[str, Any]:
        text = await self.ask_text(self.render("exe/summarize.j2", trajectory=trajectory, suggestion=suggestion),
                                   self.summary_max_tokens, purpose=purpose, memory=False,
                                   temperature=0.0 if purpose == "trajectory_summary" else None)
        knowledge, account = split_json_object(text)
        return {"knowledge": knowledge, "account": account if knowledge is not None else "", "text": text}

    async def _distil(self, trajectory: str = "") -> str:
        lines, left_out = self.memory_lines()
        prompt = self.render("exe/insight.j2", summaries=lines, left_out=left_out, insight=self.insight,
                             trajectory=trajectory)
        return await self.ask_text(prompt, self.insight_max_tokens, purpose="insight", memory=False)

    async def _load_offline_memory(self, context: EpisodeContext) -> None:
        """L2/L4: summarize each offline trajectory once per stream (and distil a first insight from them)."""
        examples = tuple(context.knowledge.get("fewshot_examples") or ())
        if examples == self._offline_key:
            return
        self._offline_key, self._offline_summaries, self._offline_insight = examples, [], ""
        policy = context.knowledge.get("fewshot_policy") or "example"
        returns = list(context.knowledge.get("fewshot_returns") or [])
        for number, example in enumerate(examples):
            trajectory = render_lines_within(example, self.trajectory_budget_tokens)
            note = await self._summarize(trajectory, "", purpose="trajectory_summary")
            self._offline_summaries.append({"episode": None, "example": number, "policy": policy,
                                            "return": returns[number] if number < len(returns) else None, **note})
        if self.use_insight and self._offline_summaries:
            self._offline_insight = await self._distil()

    # The cycle ---------------------------------------------------------------------------------
    async def _reset(self, context: EpisodeContext) -> None:
        self.suggestion = ""
        self._notes.update(suggestion=None, summary=None, insight=None)
        await self._load_offline_memory(context)
        if not self.insight:
            self.insight = self._offline_insight
        if self.use_suggestion:
            lines, left_out = self.memory_lines()
            prompt = self.render("exe/suggest.j2", summaries=lines, left_out=left_out,
                                 insight=self.insight if self.use_insight else "")
            self.suggestion = await self.ask_text(prompt, self.suggestion_max_tokens, purpose="suggestion",
                                                  memory=False)
        self._notes.update(suggestion=self.suggestion or None, insight=self.insight or None)

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        prompt = self.render("exe/act.j2", thought_chars=self.thought_chars)
        return await self.ask_one_action(prompt, thought_chars=self.thought_chars)

    async def _end_episode(self, result: EpisodeResult) -> None:
        assert self.context is not None
        if not self.context.episodes_left:
            return  # nothing later would read a summary or an insight
        trajectory = self.trajectory_text(result)
        if self.use_summary:
            note = await self._summarize(trajectory, self.suggestion if self.use_suggestion else "", "summary")
            note = {"episode": result.episode_index, "return": result.episode_return, **note}
            self.summaries = [*self.summaries, note]
            self._notes["summary"] = note
        if self.use_insight:
            self.insight = await self._distil(trajectory="" if self.use_summary else trajectory)
            self._notes["insight"] = self.insight
