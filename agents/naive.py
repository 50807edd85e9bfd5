"""NaiveAgent: ask for the action directly, no reasoning."""

from __future__ import annotations

from typing import Any

from agents.base import LanguageAgent

__all__ = ["NaiveAgent"]


class NaiveAgent(LanguageAgent):
    """Acts with one constrained request per step: descriptions, level knowledge, recent steps, state."""

    name = "naive"

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        return await self.ask_one_action(self.render("naive/act.j2"))
