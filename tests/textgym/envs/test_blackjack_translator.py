"""Blackjack's text names the hand and the dealer's card; the expert plays basic strategy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from textgym.envs.blackjack import BlackjackTranslator, basic_strategy_hits
from textgym.wrapper import make_base_env


@pytest.fixture
def translator() -> BlackjackTranslator:
    base = make_base_env("blackjack")
    return BlackjackTranslator(base)


def test_known_hand_in_words(translator: BlackjackTranslator) -> None:
    text = translator.render_observation((17, 1, 1))
    assert text == ("Your cards total 17, with a usable ace (one ace counts as 11). The dealer's face-up card "
                    "is worth 1 (an ace, which counts 1 or 11 for the dealer).")
    assert "you are bust" in translator.render_observation((24, 10, 0))


def test_every_state_reads_back(translator: BlackjackTranslator) -> None:
    spaces = translator.observation_space.spaces
    for obs in itertools.product(*(range(int(space.n)) for space in spaces)):
        np.testing.assert_array_equal(translator.read_observation(translator.render_observation(obs)), obs)


@pytest.mark.parametrize("player_sum, dealer_card, usable_ace, hits", [
    (11, 10, False, True), (12, 3, False, True), (12, 4, False, False), (16, 6, False, False),
    (16, 7, False, True), (17, 1, False, False), (17, 6, True, True), (18, 8, True, False),
    (18, 9, True, True), (18, 1, True, False), (19, 10, True, False),
])
def test_basic_strategy(player_sum: int, dealer_card: int, usable_ace: bool, hits: bool) -> None:
    assert basic_strategy_hits(player_sum, dealer_card, usable_ace) is hits


def test_expert_answers_with_raw_actions(translator: BlackjackTranslator) -> None:
    policy = translator.expert_policy(make_base_env("blackjack"))
    assert translator.action_names[policy((20, 10, 0))] == "stick"
    assert translator.action_names[policy((9, 10, 0))] == "hit"
