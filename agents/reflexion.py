"""ReflexionAgent: act like the naive agent, reflect in words after each trial, remember the reflections."""

from __future__ import annotations

from typing import Any, ClassVar

from agents.base import EpisodeContext, EpisodeResult, LanguageAgent
from agents.llm.protocol import ChatModel

__all__ = ["ReflexionAgent"]


class ReflexionAgent(LanguageAgent):
    """Verbal reinforcement (Shinn et al., 2023, "Reflexion") over the trials of a stream.

    Each step is one constrained action request, as for the naive agent. At levels with self-experience
    (L3), after every trial but the last the model reflects (free text, ``reflection_max_tokens``,
    ``purpose="reflection"``) on the whole trajectory - within ``trajectory_budget_tokens``, head and tail
    kept, the middle counted - and on its earlier reflections: what went wrong and what to do differently.
    The newest ``memory_size`` reflections are its memory: they close the system prompt of every later
    request (they replace the generic L3 trial summary, so one call per trial learns). At L1-L4 the system
    prompt starts with one worked example of a reflection on an unrelated task
    (``prompts/reflexion/demonstrations.j2``).

    Args:
        llm: the shared client.
        seed: agent seed.
        memory_size: reflections kept; at least 1.
        reflection_max_tokens: completion budget of a reflection.
        **kwargs: :class:`~agents.base.LanguageAgent` options.

    Example:
        >>> from agents.llm.client import HTTPTransport, LLMClient
        >>> client = LLMClient("m", HTTPTransport("http://127.0.0.1:1/v1", api_key_env=None))
        >>> ReflexionAgent(llm=client).reflections
        []
    """

    name = "reflexion"
    state_attributes: ClassVar[tuple[str, ...]] = (*LanguageAgent.state_attributes, "reflections")
    demonstrations_template = "reflexion/demonstrations.j2"

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, memory_size: int = 3,
                 reflection_max_tokens: int = 256, **kwargs: Any) -> None:
        super().__init__(llm, seed, memory_size=memory_size, **kwargs)
        self.reflection_max_tokens = reflection_max_tokens
        self.reflections: list[dict[str, Any]] = []  # {"episode": index, "text": reflection}, oldest first

    async def _reset(self, context: EpisodeContext) -> None:
        self._notes["reflection"] = None  # set after the episode, when one is made

    def memory_prompt(self) -> str:
        """The reflections kept from earlier trials, as the system prompt shows them."""
        return self.render("reflexion/memory.j2", reflections=self.reflections)

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        return await self.ask_one_action(self.render("reflexion/act.j2"))

    async def _end_episode(self, result: EpisodeResult) -> None:
        assert self.context is not None
        if not self.context.episodes_left:
            return
        prompt = self.render("reflexion/reflect.j2", trajectory=self.trajectory_text(result),
                             reflections=self.reflections)
        reflection = await self.ask_text(prompt, self.reflection_max_tokens, purpose="reflection", memory=False)
        note = {"episode": result.episode_index, "text": reflection}
        self.reflections = [*self.reflections, note][-self.memory_size:]
        self._notes["reflection"] = reflection
