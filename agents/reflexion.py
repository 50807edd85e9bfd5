"""ReflexionAgent: act like the naive agent, reflect in words after each episode, remember the reflections."""

from __future__ import annotations

from typing import Any

from agents.base import EpisodeResult, LanguageAgent
from agents.llm.client import LLMClient

__all__ = ["ReflexionAgent"]


class ReflexionAgent(LanguageAgent):
    """Verbal reinforcement (Shinn et al., 2023, "Reflexion") over a stream of episodes.

    Each step is one constrained action request, as for the naive agent, with the reflections of
    earlier episodes of the stream in the prompt. After an episode the model is asked (free text,
    ``reflection_max_tokens``) what went wrong and what to do differently, given the return and the last
    ``trajectory_window`` steps; the newest ``memory_size`` reflections are kept. No reflection is asked
    after the stream's last episode: nothing would read it.

    Args:
        llm: the shared client.
        seed: agent seed.
        history_window: recent transitions shown in each action prompt.
        memory_size: reflections kept (also bounds the L3 episode memory); at least 1.
        action_max_tokens: completion budget of an action reply.
        reflection_max_tokens: completion budget of a reflection.
        trajectory_window: last steps of the episode shown when reflecting.

    Example:
        >>> client = LLMClient(model="m", base_url="http://127.0.0.1:1/v1", api_key_env=None)
        >>> ReflexionAgent(llm=client).reflections
        []
    """

    name = "reflexion"
    state_attributes = (*LanguageAgent.state_attributes, "reflections")

    def __init__(self, llm: LLMClient | None = None, seed: int = 0, history_window: int = 4,
                 memory_size: int = 3, action_max_tokens: int = 48, reflection_max_tokens: int = 128,
                 trajectory_window: int = 6) -> None:
        super().__init__(llm, seed, history_window, memory_size, action_max_tokens)
        self.reflection_max_tokens = reflection_max_tokens
        self.trajectory_window = trajectory_window
        self.reflections: list[dict[str, Any]] = []  # {"episode": index, "text": reflection}, oldest first

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        prompt = self.render("reflexion/act.j2", observation=observation, reflections=self.reflections)
        return await self.ask_one_action(prompt)

    async def _end_episode(self, result: EpisodeResult) -> None:
        assert self.context is not None
        if self.context.episodes_left:
            # Reflect before the L3 memory takes this episode in, so the prompt doesn't state it twice.
            prompt = self.render("reflexion/reflect.j2", result=result, reflections=self.reflections,
                                 trajectory_window=self.trajectory_window)
            reflection = await self.ask_text(prompt, max_tokens=self.reflection_max_tokens)
            note = {"episode": result.episode_index, "text": reflection}
            self.reflections = [*self.reflections, note][-self.memory_size:]
        await super()._end_episode(result)
