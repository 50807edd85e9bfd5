"""SelfConsistencyAgent: sample several chains of thought and play the answer most of them agree on.

The vote: the most frequent action name, or the median number; for a vector action, the median of each actuator.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from agents.cot import CoTAgent
from agents.llm.protocol import ChatModel

__all__ = ["SelfConsistencyAgent", "vote"]

logger = logging.getLogger(__name__)


def vote(actions: Sequence[str], action_spec: dict[str, Any]) -> str:
    """The consensus of valid action texts: the most frequent name, or the median number (per actuator).

    Ties between names go to the one seen first, so a replayed step picks the same action. The
    median (not the mean) keeps one wild sample from dragging a continuous action.

    A vector action (one number per actuator) takes the median of each actuator on its own, written as the
    canonical ``{"name": value, ...}`` text. Voting on whole texts would be no vote: sampled numbers almost
    never agree to every digit, so the first sample would win nearly always. Each actuator's median is the
    value most samples agree on for that actuator, within its bounds, and one wild sample moves none of them.

    >>> vote(["left", "right", "right", "left"], {"type": "discrete", "names": ["left", "right"]})
    'left'
    >>> vote(["0.50", "-2.00", "0.70"], {"type": "continuous", "low": -2, "high": 2, "digits": 2})
    '0.50'
    >>> spec = {"type": "vector", "names": ["hip", "knee"], "low": [-1, -1], "high": [1, 1], "digits": 2}
    >>> vote(['{"hip": 0.10, "knee": -1.00}', '{"hip": 0.90, "knee": 0.20}', '{"hip": 0.30, "knee": 0.40}'], spec)
    '{"hip": 0.30, "knee": 0.20}'
    """
    if not actions:
        raise ValueError("vote() needs at least one action, actually none")
    digits = action_spec.get("digits", 2)
    if action_spec["type"] == "discrete":
        # most_common() lists equal counts in first-seen order.
        return Counter(actions).most_common(1)[0][0]
    if action_spec["type"] == "vector":
        # The texts are parse_reply's canonical JSON objects, one finite number per actuator.
        samples = [json.loads(action) for action in actions]
        medians = (statistics.median(float(sample[name]) for sample in samples) for name in action_spec["names"])
        return "{" + ", ".join(f'"{name}": {value:.{digits}f}'
                               for name, value in zip(action_spec["names"], medians, strict=True)) + "}"
    return f"{statistics.median(float(a) for a in actions):.{digits}f}"


class SelfConsistencyAgent(CoTAgent):
    """Self-consistency: ``n`` sampled chain-of-thought replies in one request, then a vote.

    The prompt and demonstrations are chain-of-thought's own (:attr:`CoTAgent.template`), so the two
    differ only by sampling and voting. Unparsable samples are counted by ``ask_action`` and left out of the vote;
    if none is usable the agent sends :meth:`fallback_action`. Servers that ignore ``n`` return fewer
    samples: the vote then runs over what came back (a warning says so once). llama.cpp servers
    (the embedded model included) answer all ``n`` samples but reject an ``n`` above their parallel
    slots with HTTP 400, so keep ``n <= llm.parallel`` there.

    Args:
        llm: the shared client.
        seed: agent seed.
        n: reasoning paths sampled per step.
        temperature: sampling temperature (greedy samples would all agree).
        thought_chars: the most characters of reasoning per sample.
        **kwargs: :class:`~agents.base.LanguageAgent` options.

    Example:
        >>> from agents.llm.client import HTTPTransport, LLMClient
        >>> agent = SelfConsistencyAgent(llm=LLMClient("m", HTTPTransport(api_key_env=None)), n=3)
        >>> agent.n, agent.temperature
        (3, 0.7)
    """

    name = "self_consistency"

    def __init__(self, llm: ChatModel | None = None, seed: int = 0, n: int = 5, temperature: float = 0.7,
                 thought_chars: int = 600, **kwargs: Any) -> None:
        if n < 1 or temperature < 0:
            raise ValueError(f"expected n >= 1 and temperature >= 0, actually {n} and {temperature}")
        super().__init__(llm, seed, thought_chars=thought_chars, **kwargs)
        self.n = n
        self.temperature = temperature
        self._warned_short = False

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        assert self.context is not None
        samples = await self.ask_action(self.act_prompt(), thought_chars=self.thought_chars,
                                        n=self.n, temperature=self.temperature)
        if len(samples) < self.n and not self._warned_short:
            logger.warning("asked for %d samples, the server returned %d; voting over those",
                           self.n, len(samples))
            self._warned_short = True
        valid = [action for action in samples if action is not None]
        return vote(valid, self.context.action_spec) if valid else self.fallback_action()
