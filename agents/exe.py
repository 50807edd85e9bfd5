"""EXEAgent: the explore-exploit guided agent of Text-Gym-Agents (suggest, act, summarize, distil)."""

from __future__ import annotations

from typing import Any

from agents.base import EpisodeContext, EpisodeResult, LanguageAgent
from agents.llm.client import LLMClient

__all__ = ["EXEAgent"]


class EXEAgent(LanguageAgent):
    """Plans exploration and exploitation per episode, and learns across episodes through summaries.

    The cycle over a stream of episodes:

    1. before an episode (``_reset``): a *suggestion* - which task knowledge decides the optimal policy,
       how to explore for it in this episode, how to exploit what is known, and how to balance the two
       given the episodes left - from the current insight and the episode summaries so far;
    2. each step: one constrained action request holding the insight, the suggestion and the last
       ``history_window`` transitions;
    3. after an episode: a *summary* of its last ``trajectory_window`` steps and return (the knowledge
       values it revealed, the policy's behaviour), then a new *insight* distilled from all kept summaries.
       Step 3 is skipped after the stream's last episode: nothing would read it.

    The descriptions and the level's knowledge (few-shot, guidance, L3 memory) reach every request
    through the system prompt. Every request has a bounded completion budget.

    Args:
        llm: the shared client.
        seed: agent seed.
        history_window: recent transitions shown in each action prompt.
        memory_size: episode summaries kept (also bounds the L3 episode memory); at least 1.
        action_max_tokens: completion budget of an action reply.
        suggestion_max_tokens: completion budget of a suggestion.
        summary_max_tokens: completion budget of an episode summary.
        insight_max_tokens: completion budget of an insight.
        trajectory_window: last steps of the episode shown when summarizing.

    Example:
        >>> agent = EXEAgent(llm=LLMClient(model="m", base_url="http://127.0.0.1:1/v1", api_key_env=None))
        >>> agent.insight, agent.summaries
        ('', [])
    """

    name = "exe"
    state_attributes = (*LanguageAgent.state_attributes, "summaries", "insight")

    def __init__(self, llm: LLMClient | None = None, seed: int = 0, history_window: int = 3,
                 memory_size: int = 3, action_max_tokens: int = 48, suggestion_max_tokens: int = 128,
                 summary_max_tokens: int = 128, insight_max_tokens: int = 128, trajectory_window: int = 6) -> None:
        super().__init__(llm, seed, history_window, memory_size, action_max_tokens)
        self.suggestion_max_tokens = suggestion_max_tokens
        self.summary_max_tokens = summary_max_tokens
        self.insight_max_tokens = insight_max_tokens
        self.trajectory_window = trajectory_window
        self.summaries: list[dict[str, Any]] = []  # {"episode": index, "text": summary}, oldest first
        self.insight = ""
        self.suggestion = ""

    async def _reset(self, context: EpisodeContext) -> None:
        prompt = self.render("exe/suggest.j2", summaries=self.summaries, insight=self.insight)
        self.suggestion = await self.ask_text(prompt, max_tokens=self.suggestion_max_tokens)

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        prompt = self.render("exe/act.j2", observation=observation, insight=self.insight,
                             suggestion=self.suggestion)
        return await self.ask_one_action(prompt)

    async def _end_episode(self, result: EpisodeResult) -> None:
        assert self.context is not None
        if self.context.episodes_left:
            # Summarize before the L3 memory takes this episode in, so the prompt doesn't state it twice.
            prompt = self.render("exe/summarize.j2", result=result, trajectory_window=self.trajectory_window)
            summary = await self.ask_text(prompt, max_tokens=self.summary_max_tokens)
            note = {"episode": result.episode_index, "text": summary}
            self.summaries = [*self.summaries, note][-self.memory_size:]
            prompt = self.render("exe/insight.j2", summaries=self.summaries, insight=self.insight)
            self.insight = await self.ask_text(prompt, max_tokens=self.insight_max_tokens)
        await super()._end_episode(result)
