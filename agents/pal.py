"""PALAgent (program-aided language model): reason as a short program whose last lines name the action."""

from __future__ import annotations

from typing import Any

from agents.base import LanguageAgent, Transition
from agents.llm.protocol import ChatModel
from agents.parsing import parse_tail

__all__ = ["PALAgent"]


class PALAgent(LanguageAgent):
    """Program-aided reasoning (Gao et al., 2023, "PAL"), as Text-Gym-Agents ran it.

    One free-text request per step asks for a short Python-style program that works out the action from the state and
    ends with a ``# Action: <name>`` line. The program is **never executed**: only its last ``tail_lines`` non-empty
    lines are read, with the same parser as every other reply (``agents.parsing.parse_tail``), because the body names
    actions and numbers of its own. A reply without an action there is counted invalid and the fallback is played. At
    L1-L4 two worked examples on unrelated tasks come first (``prompts/pal/demonstrations.j2``).

    Args:
        llm: the shared client.
        seed: agent seed.
        program_max_tokens: completion budget of the program.
        tail_lines: last non-empty lines searched for the action.
        **kwargs: :class:`~agents.base.LanguageAgent` options.

    Example:
        >>> from agents.llm.client import HTTPTransport, LLMClient
        >>> PALAgent(llm=LLMClient("m", HTTPTransport(api_key_env=None))).program_max_tokens
        400
    """

    name = "pal"
    demonstrations_template = "pal/demonstrations.j2"

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, program_max_tokens: int = 400,
                 tail_lines: int = 3, **kwargs: Any) -> None:
        if program_max_tokens < 1 or tail_lines < 1:
            raise ValueError(f"expected program_max_tokens >= 1 and tail_lines >= 1, actually "
                             f"{program_max_tokens} and {tail_lines}")
        super().__init__(llm, seed, **kwargs)
        self.program_max_tokens = program_max_tokens
        self.tail_lines = tail_lines

    def history_reply(self, transition: Transition) -> str:
        """An earlier step as the line its program ended with (the protocol's history shows the action only)."""
        return "# Action: (none valid)" if transition.invalid_action else f"# Action: {transition.action}"

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        assert self.context is not None
        texts = await self.ask(self.messages("", episode=True, request=self.render("pal/act.j2")), purpose="action",
                               max_tokens=self.program_max_tokens)
        self.last_replies = texts
        parsed = parse_tail(texts[0] if texts else "", self.context.action_spec, self.tail_lines)
        if not parsed.valid:
            self.invalid_replies += 1
            return self.fallback_action()
        assert parsed.action is not None
        return parsed.action
