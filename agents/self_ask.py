"""SelfAskAgent: ask and answer follow-up questions about the state, then act on the answers."""

from __future__ import annotations

from typing import Any

from agents.base import LanguageAgent
from agents.llm.protocol import ChatModel

__all__ = ["SelfAskAgent"]


class SelfAskAgent(LanguageAgent):
    """Self-ask: two requests per step, a free-text one for sub-questions, a constrained one for the action.

    The first request asks for up to ``max_questions`` "Follow up: / Intermediate answer:" pairs
    about the current state, in free text capped at ``questions_max_tokens``; the second shows them
    in the action prompt and asks for the action alone. Splitting the two keeps the questions in the
    model's natural format (newlines, labels) instead of inside a JSON string, while the action
    request stays short and constrained to valid actions. At L1-L4 two worked examples of the format on
    unrelated tasks come first (``prompts/self_ask/demonstrations.j2``).

    Args:
        llm: the shared client.
        seed: agent seed.
        max_questions: follow-up questions asked for per step.
        questions_max_tokens: completion budget of the questions request.
        **kwargs: :class:`~agents.base.LanguageAgent` options.

    Example:
        >>> from agents.llm.client import HTTPTransport, LLMClient
        >>> SelfAskAgent(llm=LLMClient("m", HTTPTransport(api_key_env=None))).max_questions
        2
    """

    name = "self_ask"
    demonstrations_template = "self_ask/demonstrations.j2"

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, max_questions: int = 2,
                 questions_max_tokens: int = 160, **kwargs: Any) -> None:
        if max_questions < 1 or questions_max_tokens < 1:
            raise ValueError(f"expected max_questions >= 1 and questions_max_tokens >= 1, "
                             f"actually {max_questions} and {questions_max_tokens}")
        super().__init__(llm, seed, **kwargs)
        self.max_questions = max_questions
        self.questions_max_tokens = questions_max_tokens

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        questions = await self.ask_text(
            self.render("self_ask/questions.j2", max_questions=self.max_questions),
            self.questions_max_tokens, purpose="questions", episode=True)
        # The answers differ every step, so this request stays in the step's turn.
        return await self.ask_one_action("", step_prompt=self.render("self_ask/act.j2", questions=questions))
