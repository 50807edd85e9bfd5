"""CoTAgent: reason step by step in a bounded ``thought`` field, then act, in one constrained request."""

from __future__ import annotations

from typing import Any

from agents.base import LanguageAgent
from agents.llm.protocol import ChatModel

__all__ = ["CoTAgent"]


class CoTAgent(LanguageAgent):
    """Chain-of-thought: each step asks for ``{"thought": ..., "action": ...}`` with the thought first.

    The JSON schema puts a ``maxLength``-bounded ``thought`` before ``action``, so the model reasons
    before it commits, the reasoning cannot eat the whole budget, and constrained decoding still
    forces a valid action at the end (a 135M model otherwise often forgets to answer).

    At L1-L4 the system prompt starts with two worked examples of the method on unrelated tasks
    (``prompts/cot/demonstrations.j2``, in this reply format; ``demonstrations=False`` drops them).

    Subclasses that only change *what* the model writes in the thought (self-consistency votes over
    several of them, SPP fills it with a persona discussion) override :attr:`template` (and
    :attr:`demonstrations_template`).

    Args:
        llm: the shared client.
        seed: agent seed.
        thought_chars: the most characters of reasoning per step (about a third as many tokens). The
            default suits capable models; small local models answer faster with ~200.
        **kwargs: :class:`~agents.base.LanguageAgent` options (``history_window``, ``memory_size``,
            ``action_max_tokens``, ``demonstrations``, ...).

    Example:
        >>> from agents.llm.client import HTTPTransport, LLMClient
        >>> CoTAgent(llm=LLMClient("m", HTTPTransport(api_key_env=None)), thought_chars=120).thought_chars
        120
    """

    name = "cot"
    template = "cot/act.j2"
    demonstrations_template = "cot/demonstrations.j2"

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, thought_chars: int = 600,
                 **kwargs: Any) -> None:
        if thought_chars < 1:
            raise ValueError(f"thought_chars must be >= 1, actually {thought_chars}")
        super().__init__(llm, seed, **kwargs)
        self.thought_chars = thought_chars

    def act_prompt(self) -> str:
        """This step's request (it follows the state in the step's user turn)."""
        return self.render(self.template, thought_chars=self.thought_chars)

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        return await self.ask_one_action(self.act_prompt(), thought_chars=self.thought_chars)
