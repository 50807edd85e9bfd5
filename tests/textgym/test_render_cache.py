"""The texts a reset gives are rendered once per env and step limit: they must stay byte-identical to fresh ones.

Each case compares what an env says after several resets and steps, and after its step limit changes
(:func:`~textgym.wrapper.state_step_limit` with ``max_episode_steps``), with what a freshly made env (or its
translator, rendering from scratch) says for the same step limit, so a stale or shared cache fails here.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import pytest

import textgym  # noqa: F401  # registers the TextGym ids
from textgym.chat import ChatEnv, briefing
from textgym.wrapper import TextEnv, state_step_limit

TEXT_KEYS = ("game_description", "goal_description", "action_description", "action_spec", "valid_actions",
             "knowledge", "level")

CASES = [
    ("TextGym-CartPole-v0", level, {}) for level in (1, 2, 3, 4, 5)
] + [
    ("TextGym-Blackjack-v0", level, {}) for level in (1, 3, 4, 5)
] + [
    ("TextGym-Taxi-v0", 1, {}), ("TextGym-Taxi-v0", 5, {}),
    ("TextGym-FrozenLake-v0", 1, {}), ("TextGym-FrozenLake-v0", 5, {"map_visible": True}),
    ("TextGym-MountainCar-v0", 1, {}), ("TextGym-MountainCar-v0", 5, {}),
    ("TextGym-CartPole-v0", 1, {"obfuscate": True, "obfuscation_seed": 3}),
    ("TextGym-CartPole-v0", 4, {"obfuscate": True, "fewshot_episodes": 2}),
    ("TextGym-Blackjack-v0", 5, {"obfuscate": True}),
    ("TextGym-MountainCar-v0", 1, {"obfuscate": True, "obfuscation_seed": 1}),
]
CASE_IDS = [f"{env_id.split('-')[1]}-L{level}{'-obf' if kwargs.get('obfuscate') else ''}"
            for env_id, level, kwargs in CASES]


def _text_env(env: gym.Env) -> TextEnv:
    inner: Any = env
    while not isinstance(inner, TextEnv):
        inner = inner.env
    return inner


def _texts(info: dict[str, Any]) -> dict[str, Any]:
    return {key: info[key] for key in TEXT_KEYS}


def _from_scratch(env: gym.Env, step_limit: int | None) -> dict[str, str]:
    """The descriptions as the translator renders them now, with no cache in between."""
    translator = _text_env(env).translator
    return {"game_description": translator.game_description(),
            "goal_description": translator.goal_description(step_limit),
            "action_description": translator.action_description()}


def _play(env: gym.Env, episodes: int, steps: int = 3) -> dict[str, Any]:
    """Reset ``episodes`` times (a few steps each, editing what reset returned); the last reset's texts."""
    info: dict[str, Any] = {}
    for episode in range(episodes):
        _, info = env.reset(seed=episode)
        texts = copy.deepcopy(_texts(info))
        for key in ("knowledge", "action_spec"):  # a caller editing its copy must not reach the next reset
            info[key].clear()
        info["valid_actions"].append("edited")
        info = {**info, **texts}
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step("1")
            if terminated or truncated:
                break
    return _texts(info)


@pytest.mark.parametrize(("env_id", "level", "kwargs"), CASES, ids=CASE_IDS)
def test_reset_texts_match_a_fresh_env_after_resets_and_a_new_step_limit(env_id: str, level: int,
                                                                         kwargs: dict[str, Any]) -> None:
    registered = gym.spec(env_id).max_episode_steps
    fresh = _texts(state_step_limit(gym.make(env_id, level=level, **kwargs)).reset(seed=0)[1])
    env = state_step_limit(gym.make(env_id, level=level, **kwargs))
    assert _play(env, episodes=3) == fresh
    assert fresh["goal_description"] == _from_scratch(env, registered)["goal_description"]

    # The same env object, its limit changed after construction (as runners do): the goal must follow.
    env.spec.max_episode_steps = 7  # type: ignore[union-attr]  # gym.make sets a spec
    state_step_limit(env)
    capped = _play(env, episodes=2)
    assert _text_env(env).step_limit == 7
    assert capped["goal_description"] == _from_scratch(env, 7)["goal_description"] != fresh["goal_description"]
    assert "7 steps" in capped["goal_description"]
    fresh_capped = _texts(state_step_limit(gym.make(env_id, level=level, max_episode_steps=7, **kwargs))
                          .reset(seed=0)[1])
    assert capped == fresh_capped
    assert {key: capped[key] for key in capped if key != "goal_description"} == \
        {key: fresh[key] for key in fresh if key != "goal_description"}

    # And back to the registered limit (a cached text for it may be reused, and must be the same).
    env.spec.max_episode_steps = registered  # type: ignore[union-attr]
    state_step_limit(env)
    assert _play(env, episodes=2) == fresh
    assert _from_scratch(env, registered) == {key: fresh[key] for key in _from_scratch(env, registered)}


def test_setting_the_step_limit_directly_changes_the_goal() -> None:
    env = gym.make("TextGym-Blackjack-v0")
    text_env = _text_env(env)
    before = env.reset(seed=0)[1]["goal_description"]
    text_env.step_limit = None
    assert env.reset(seed=1)[1]["goal_description"] == text_env.translator.goal_description(None) != before
    text_env.step_limit = 12_345
    assert "12,345 steps" in env.reset(seed=2)[1]["goal_description"]


def test_a_replaced_translator_speaks_for_itself() -> None:
    plain = gym.make("TextGym-CartPole-v0")
    obfuscated = gym.make("TextGym-CartPole-v0", obfuscate=True)
    info = plain.reset(seed=0)[1]
    _text_env(plain).translator = _text_env(obfuscated).translator
    replaced = plain.reset(seed=0)[1]
    assert _texts(replaced) | {"knowledge": None} == _texts(obfuscated.reset(seed=0)[1]) | {"knowledge": None}
    assert replaced["game_description"] != info["game_description"]


def test_two_envs_do_not_share_texts() -> None:
    default = gym.make("TextGym-FrozenLake-v0", map_visible=True)
    other = gym.make("TextGym-FrozenLake-v0", map_visible=True, map_name="8x8", is_slippery=False)
    default.reset(seed=0)
    assert "8 rows" in other.reset(seed=0)[1]["game_description"]
    assert "8 rows" not in default.reset(seed=1)[1]["game_description"]


def test_knowledge_copies_are_deep() -> None:
    env = gym.make("TextGym-CartPole-v0", level=4, fewshot_episodes=2)
    info = env.reset(seed=0)[1]
    info["knowledge"]["fewshot_examples"].append("edited")
    info["knowledge"]["fewshot_returns"][0] = -1.0
    again = env.reset(seed=1)[1]["knowledge"]
    assert again == _text_env(env).knowledge
    assert "edited" not in again["fewshot_examples"] and again["fewshot_returns"][0] != -1.0
    assert again is not _text_env(env).knowledge
    assert again["fewshot_examples"] is not _text_env(env).knowledge["fewshot_examples"]


@pytest.mark.parametrize(("env_id", "level", "kwargs"), [("cartpole", 1, {}), ("blackjack", 4, {}),
                                                         ("cartpole", 2, {"max_episode_steps": 9}),
                                                         ("blackjack", 1, {"obfuscate": True})])
def test_chat_system_prompt_matches_a_fresh_briefing(env_id: str, level: int, kwargs: dict[str, Any]) -> None:
    chat = ChatEnv(env_id, level=level, **kwargs)
    first = chat.reset(seed=0)[0][0]["content"]
    for seed in range(1, 4):
        messages, info = chat.reset(seed=seed)
        chat.step("1")
        assert messages[0]["content"] == first
        assert briefing(info) in first
    fresh_chat = ChatEnv(env_id, level=level, **kwargs)
    assert fresh_chat.reset(seed=5)[0][0]["content"] == first
