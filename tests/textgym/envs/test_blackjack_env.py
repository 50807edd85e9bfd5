"""TextGym's Blackjack deals what gymnasium's deals: same cards, observations, rewards and random stream."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.toy_text import blackjack

import textgym  # noqa: F401  # registers the TextGym ids
from textgym.envs.blackjack import BlackjackEnv
from textgym.wrapper import make_base_env

RULES = [{}, {"natural": True, "sab": False}, {"natural": False, "sab": False}]  # {}: Blackjack-v1's (sab)


def _pair(**rules: bool) -> tuple[gym.Env, gym.Env]:
    ours = make_base_env("blackjack", **rules)
    theirs = gym.make("Blackjack-v1", disable_env_checker=True, max_episode_steps=-1, **rules)
    return ours, theirs


def _dealt(env: gym.Env) -> tuple:
    game = env.unwrapped
    return (list(game.player), list(game.dealer), str(game.dealer_top_card_suit),
            str(game.dealer_top_card_value_str), game.np_random.bit_generator.state)


@pytest.mark.parametrize("rules", RULES)
def test_every_seed_plays_out_as_in_gymnasium(rules: dict[str, bool]) -> None:
    ours, theirs = _pair(**rules)
    actions = np.random.default_rng(7)
    steps = 0
    for seed in range(1500):
        assert ours.reset(seed=seed) == theirs.reset(seed=seed)
        assert _dealt(ours) == _dealt(theirs)
        done = False
        while not done:
            action = int(actions.integers(0, 2))
            result = ours.step(action)
            assert result == theirs.step(action)
            assert _dealt(ours) == _dealt(theirs)
            done = result[2] or result[3]
            steps += 1
    assert steps > 2000  # hits as well as sticks were played


def test_unseeded_resets_and_a_set_generator_follow_gymnasium() -> None:
    ours, theirs = _pair()
    for env in (ours, theirs):
        env.unwrapped.np_random = np.random.default_rng(11)  # gymnasium's setter: the generator to draw from
    for _ in range(200):  # resets without a seed go on drawing from it
        assert ours.reset() == theirs.reset()
        assert ours.step(1) == theirs.step(1)
    assert ours.unwrapped.np_random_seed == theirs.unwrapped.np_random_seed == -1
    ours.reset(seed=5)
    theirs.reset(seed=5)
    assert ours.unwrapped.np_random_seed == theirs.unwrapped.np_random_seed == 5
    assert isinstance(ours.unwrapped.np_random, np.random.Generator)


def test_the_text_env_and_the_base_env_are_this_class_under_gymnasiums_id() -> None:
    base = make_base_env("blackjack")
    assert type(base.unwrapped) is BlackjackEnv and isinstance(base.unwrapped, blackjack.BlackjackEnv)
    assert base.spec is not None and base.spec.id == "Blackjack-v1" and base.spec.kwargs["sab"] is True
    text = gym.make("TextGym-Blackjack-v0", level=1)
    assert type(text.unwrapped) is BlackjackEnv  # TextEnv wraps the base env
    _, info = text.reset(seed=3)
    theirs = gym.make("Blackjack-v1", disable_env_checker=True)
    raw, _ = theirs.reset(seed=3)
    assert info["raw_obs"] == raw


@pytest.mark.parametrize("items", [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10], ["C", "D", "H", "S"], ["J", "Q", "K"],
                                   [4]])
def test_a_list_draw_is_numpys_draw(items: list) -> None:
    ours, theirs = (make_base_env("blackjack").unwrapped, blackjack.BlackjackEnv())
    ours.reset(seed=1)
    theirs.reset(seed=1)
    drawn = [ours.np_random.choice(items) for _ in range(500)]
    assert drawn == [theirs.np_random.choice(items) for _ in range(500)]
    assert len(set(drawn)) == len(set(items))
    # Other calls are numpy's own: several at once, weighted, without replacement.
    assert list(ours.np_random.choice(items, size=3)) == list(theirs.np_random.choice(items, size=3))
    weights = np.full(len(items), 1 / len(items))
    assert ours.np_random.choice(items, p=weights) == theirs.np_random.choice(items, p=weights)
    assert ours.np_random.choice(items, replace=False) == theirs.np_random.choice(items, replace=False)
    assert ours.np_random.bit_generator.state == theirs.np_random.bit_generator.state
