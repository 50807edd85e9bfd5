"""Blackjack as text: one hand against the dealer, deciding when to stop taking cards."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.toy_text import blackjack

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.translator import Policy, Translator

__all__ = ["BlackjackEnv", "BlackjackTranslator", "basic_strategy_hits"]

# Card values of gymnasium's deck: an ace counts 1 (or 11 when that does not bust), face cards 10.
ACE = min(blackjack.deck)
TEN = max(blackjack.deck)
# The game's rules, which gymnasium keeps inside its functions: a total over 21 is bust, and the
# dealer draws until reaching 17.
BUST_ABOVE = 21
DEALER_STANDS_FROM = 17

# Basic strategy for standing or hitting (no doubling or splitting) against a dealer who stands on
# soft 17: the lowest total to stand on, by the dealer's face-up card.
HARD_STAND_FROM = {2: 13, 3: 13, 4: 12, 5: 12, 6: 12}
HARD_STAND_OTHERWISE = 17
SOFT_STAND_FROM = {9: 19, 10: 19}
SOFT_STAND_OTHERWISE = 18


def basic_strategy_hits(player_sum: int, dealer_card: int, usable_ace: bool) -> bool:
    """Whether basic strategy takes another card.

    >>> basic_strategy_hits(16, 10, False), basic_strategy_hits(16, 6, False), basic_strategy_hits(18, 9, True)
    (True, False, True)
    """
    if usable_ace:
        return player_sum < SOFT_STAND_FROM.get(dealer_card, SOFT_STAND_OTHERWISE)
    return player_sum < HARD_STAND_FROM.get(dealer_card, HARD_STAND_OTHERWISE)


class _IndexDraws(np.random.Generator):
    """A generator whose one uniform ``choice`` from a Python list is an index draw, as numpy's own is.

    ``Generator.choice`` turns the list into an array first and then draws ``integers(0, len)``: for a 13-card
    deck the conversion is most of its ~10 us. This draws that same integer from the same bit generator, so the
    random stream is consumed alike; every other call is numpy's.
    """

    def choice(self, a: Any, size: Any = None, replace: bool = True, p: Any = None, axis: int = 0,
               shuffle: bool = True) -> Any:
        if type(a) is list and a and size is None and replace and p is None and axis == 0:
            return a[self.integers(0, len(a))]
        return super().choice(a, size, replace, p, axis, shuffle)


class BlackjackEnv(blackjack.BlackjackEnv):
    """gymnasium's Blackjack, dealing every card as gymnasium does at a sixth of the cost: what TextGym makes.

    gymnasium draws each card with ``np_random.choice`` over its deck list, a sixth of a hand's time in a 64-stream
    TextGym run (a hand is one to three decisions); a reset and a hit took 132 us, 68 us here. Here ``np_random``
    is read through :class:`_IndexDraws` over the same bit generator, so each seed deals the same cards, and
    observations, rewards and the generator's state after every step equal gymnasium's
    (``tests/textgym/envs/test_blackjack_env.py`` checks this against gymnasium's class). Seeding,
    ``np_random_seed`` and setting ``np_random`` are gymnasium's.
    """

    _draws: _IndexDraws | None = None

    @property
    def np_random(self) -> np.random.Generator:
        generator, draws = super().np_random, self._draws
        if draws is None or draws.bit_generator is not generator.bit_generator:  # seeded anew (reset) or set
            draws = self._draws = _IndexDraws(generator.bit_generator)
        return draws

    @np_random.setter
    def np_random(self, value: np.random.Generator) -> None:
        vars(gym.Env)["np_random"].fset(self, value)  # gymnasium's own setter


# The obfuscated variant (textgym.obfuscation): a draw-tokens duel against an opponent with a fixed rule.
OBFUSCATION = ObfuscationSpec(
    objects=("opponent", "act0", "act1", "flex"),
    quantities=(Quantity("your tally", "count"), Quantity("{opponent} shown token", "count"),
                Quantity("{flex}", "category", ("absent", "present"))),
    actions=("{act0}", "{act1}"),
    giveaways=("blackjack", "Blackjack-v1", "TextGym-Blackjack-v0", "dealer", "card", "cards", "ace", "aces",
               "jack", "queen", "king", "deck", "hit", "stick", "stand", "bust", "natural", "21", "twenty-one",
               "17", "casino", "soft"),
    templates="blackjack/templates/obfuscated",
)


class BlackjackTranslator(Translator):
    """Speaks for ``Blackjack-v1``: your total, whether an ace counts as 11, and the dealer's face-up card.

    Example:
        >>> from textgym.wrapper import make_base_env
        >>> base = make_base_env("blackjack")
        >>> translator = BlackjackTranslator(base)
        >>> translator.render_observation((15, 10, 0)).split(".")[0]
        'Your cards total 15, with no usable ace'
    """

    name = "blackjack"
    action_names = ("stick", "hit")  # index 0 stops drawing, 1 draws a card (BlackjackEnv.step)

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "ace": ACE, "ten": TEN, "bust_above": BUST_ABOVE,
                "dealer_stands_from": DEALER_STANDS_FROM,
                # The payout rules for a natural, set by gym.make(..., natural=..., sab=...); sab overrides natural.
                "natural": bool(self.env.natural), "sab": bool(self.env.sab)}

    def describe(self, obs: Any) -> dict[str, Any]:
        player_sum, dealer_card, usable_ace = (int(value) for value in obs)
        return {"player_sum": player_sum, "dealer_card": dealer_card, "usable_ace": bool(usable_ace)}

    def read_observation(self, text: str) -> np.ndarray:
        player = re.search(r"Your cards total (\d+), with (a|no) usable ace", text)
        dealer = re.search(r"The dealer's face-up card is worth (\d+)", text)
        if player is None or dealer is None:
            raise ValueError(f"no player total or dealer card in {text!r}")
        return np.array([int(player.group(1)), int(dealer.group(1)), int(player.group(2) == "a")])

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def expert_policy(self, env: gym.Env) -> Policy:
        return lambda obs: int(basic_strategy_hits(int(obs[0]), int(obs[1]), bool(obs[2])))
