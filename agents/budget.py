"""Token budgets for prompt parts: one estimate, and two ways to fit a list of texts into a budget.

Every budget in ``agents/`` is counted with :func:`estimate_tokens`, a tokenizer-free estimate (no model
download, the same number for every backend): a run of letters counts one token, digits count one token per
group of up to three (BPE tokenizers split long numbers), and every other visible character counts one.
It follows how BPE tokenizers such as OpenAI's split numbers, which a flat "characters / 4" undercounts in
number-heavy observation text. Measured on CartPole action prompts (history 10): SmolLM2's tokenizer, which
splits every digit, gives 1.2-1.3x this estimate (naive L1: 978 vs 780; EXE L5: 1576 vs 1312), so leave that
much headroom when a budget must fit a small model's context.

Nothing is ever cut silently: :func:`keep_head_and_tail` replaces the middle of a trajectory by a line
that says how many steps were left out, and :func:`keep_newest` says how many older items it dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["estimate_tokens", "keep_head_and_tail", "keep_newest"]

_PIECE = re.compile(r"[A-Za-z]+|\d{1,3}|\S")


def estimate_tokens(text: str) -> int:
    """About how many tokens a BPE tokenizer makes of ``text``.

    >>> estimate_tokens("The pole leans 0.046 rad to the left.")
    11
    """
    return len(_PIECE.findall(text))


def keep_head_and_tail(lines: Sequence[str], budget_tokens: int, unit: str = "steps") -> list[str]:
    """``lines`` if they fit ``budget_tokens``; otherwise the first and last ones that fit.

    One line in between says how many were left out (the head and the tail get half the budget each).

    >>> keep_head_and_tail(["a", "b", "c", "d", "e"], 2, unit="lines")
    ['a', '... 3 lines left out (over the 2-token budget) ...', 'e']
    """
    costs = [estimate_tokens(line) for line in lines]
    if sum(costs) <= budget_tokens:
        return list(lines)
    head, used = 0, 0
    while head < len(lines) and used + costs[head] <= budget_tokens / 2:
        used += costs[head]
        head += 1
    tail, used = 0, 0
    while tail < len(lines) - head and used + costs[len(lines) - 1 - tail] <= budget_tokens / 2:
        used += costs[len(lines) - 1 - tail]
        tail += 1
    left_out = len(lines) - head - tail
    marker = f"... {left_out} {unit} left out (over the {budget_tokens}-token budget) ..."
    return [*lines[:head], marker, *lines[len(lines) - tail:]]


def keep_newest(texts: Sequence[str], budget_tokens: int) -> tuple[list[str], int]:
    """The newest ``texts`` (given oldest first) that fit ``budget_tokens`` together, and how many were dropped.

    They stay oldest first. The newest one is always kept, even alone over the budget, so a prompt
    never loses the latest lesson.

    >>> keep_newest(["old lesson", "newer lesson", "newest lesson"], 4)
    (['newer lesson', 'newest lesson'], 1)
    """
    kept: list[str] = []
    used = 0
    for text in reversed(texts):
        cost = estimate_tokens(text)
        if kept and used + cost > budget_tokens:
            break
        kept.append(text)
        used += cost
    kept.reverse()
    return kept, len(texts) - len(kept)
