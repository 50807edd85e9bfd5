"""SPPAgent (Solo Performance Prompting): the model simulates a few experts who discuss, then acts."""

from __future__ import annotations

from typing import Any

from agents.cot import CoTAgent
from agents.llm.protocol import ChatModel

__all__ = ["SPPAgent"]


class SPPAgent(CoTAgent):
    """Solo Performance Prompting: one constrained request per step, a persona discussion, then the action.

    The model picks about three personas that suit the task (say a physicist, a game strategist and
    a critic), lets each speak once and settles on the action. The discussion goes in the bounded
    ``thought`` field of the same constrained reply as the action, rather than a free-text request
    followed by an action request, because with a 135M model on two CPU cores:

    * one request evaluates the long system prompt (few-shot episodes, guidance) once, not twice;
    * the grammar caps the discussion at ``thought_chars`` and then forces a valid action, so the
      model cannot ramble past its budget or end without answering;
    * the action is decoded right after the discussion, in the same reply, so it still reads it.

    SmolLM2-135M often reasons in one voice instead of three; the reply stays legal either way. At L1-L4
    two worked examples on unrelated tasks come first (``prompts/spp/demonstrations.j2``).

    Args:
        llm: the shared client.
        seed: agent seed.
        thought_chars: the most characters of persona discussion per step (three voices: twice
            chain-of-thought's default; small local models answer faster with ~300).
        **kwargs: :class:`~agents.base.LanguageAgent` options.

    Example:
        >>> from agents.llm.client import HTTPTransport, LLMClient
        >>> SPPAgent(llm=LLMClient("m", HTTPTransport(api_key_env=None))).thought_chars
        1200
    """

    name = "spp"
    template = "spp/act.j2"
    demonstrations_template = "spp/demonstrations.j2"

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, thought_chars: int = 1200,
                 **kwargs: Any) -> None:
        super().__init__(llm, seed, thought_chars=thought_chars, **kwargs)
