"""Obfuscated variants are the same task in other words: proofs over every env (``obfuscate=True``).

* Same task: the same seed and base actions give the same raw observations, rewards and terminations; the expert
  acting through the obfuscated text (read back through the inverse maps) plays what it plays through the plain text.
* Faithful: every observation reads back exactly as the plain text's does, and actions round-trip exactly.
* No leak: no giveaway word of the task appears in any text of the obfuscated variant.
"""

from __future__ import annotations

import functools
import json

import gymnasium as gym
import numpy as np
import pytest

import textgym  # noqa: F401  (registers the envs)
from tests.experiments.conftest import compose_config
from textgym.obfuscation import ObfuscatedTranslator
from textgym.registration import ENVS
from textgym.trajectories import Rollout, render_trajectory
from textgym.wrapper import make_base_env, make_translator

OBFUSCATED = list(ENVS)  # every registered env has an obfuscated variant
HEAVY = {name for name, entry in ENVS.items() if entry.extra is not None}
# The trajectory layout says steps were "left out" when it elides them: that is not a direction.
NEUTRAL_PHRASES = ("left out",)


def _steps(name: str) -> int:
    return 15 if name in HEAVY else 40


@functools.cache
def _pair(name: str) -> tuple[gym.Env, object, ObfuscatedTranslator]:
    base = make_base_env(name)
    plain = make_translator(name, base)
    return base, plain, make_translator(name, base, obfuscate=True, obfuscation_seed=0)


def _random_actions(name: str, count: int) -> list:
    space = make_base_env(name).action_space
    space.seed(1)
    return [space.sample() for _ in range(count)]


def _leaks(translator: ObfuscatedTranslator, text: str) -> list[str]:
    for phrase in NEUTRAL_PHRASES:
        text = text.replace(phrase, "")
    return sorted({match.group(0) for match in translator.giveaways().finditer(text)})


@pytest.mark.parametrize("name", OBFUSCATED)
def test_same_task_under_the_same_base_actions(name: str) -> None:
    _, plain, obfuscated = _pair(name)
    envs = {flag: gym.make(ENVS[name].text_id, obfuscate=flag) for flag in (False, True)}
    texts = {flag: envs[flag].reset(seed=3) for flag in (False, True)}
    np.testing.assert_array_equal(np.asarray(texts[False][1]["raw_obs"]), np.asarray(texts[True][1]["raw_obs"]))
    assert texts[False][0] != texts[True][0]
    for action in _random_actions(name, _steps(name)):
        results = {}
        for flag, translator in ((False, plain), (True, obfuscated)):
            # Text for a continuous action (each text rounds it the same way), the base index for a discrete one.
            sent = int(action) if translator.is_discrete else translator.action_to_text(action)
            results[flag] = envs[flag].step(sent)
        (_, r0, t0, u0, i0), (_, r1, t1, u1, i1) = results[False], results[True]
        np.testing.assert_array_equal(np.asarray(i0["raw_obs"]), np.asarray(i1["raw_obs"]))
        np.testing.assert_array_equal(np.asarray(i0["base_action"]), np.asarray(i1["base_action"]))
        assert (r0, t0, u0) == (r1, t1, u1)
        if t0 or u0:
            break


@pytest.mark.parametrize("name", [n for n in OBFUSCATED if ENVS[n].translator_class().has_controller])
def test_expert_through_the_obfuscated_text_plays_as_through_the_plain_text(name: str) -> None:
    episodes = {}
    for flag in (False, True):
        env = gym.make(ENVS[name].text_id, obfuscate=flag)
        translator = env.get_wrapper_attr("translator")
        expert = translator.expert(translator.env)
        text, info = env.reset(seed=5)
        actions, total = [], 0.0
        for _ in range(60 if name in HEAVY else 300):
            # Where the text carries the whole observation the expert reads it back from the text; Atari's text
            # carries named RAM quantities, so there the expert reads the RAM and only its action goes through text.
            read, raw = np.asarray(translator.read_observation(text)), np.asarray(info["raw_obs"])
            seen = read.astype(raw.dtype).reshape(raw.shape) if read.size == raw.size else info["raw_obs"]
            text, reward, terminated, truncated, info = env.step(translator.action_to_text(expert(seen)))
            assert not info["invalid_action"], text
            actions.append(np.asarray(info["base_action"]).tolist())
            total += float(reward)
            if terminated or truncated:
                break
        episodes[flag] = (total, actions)
    assert episodes[True] == episodes[False]


@pytest.mark.parametrize("name", OBFUSCATED)
def test_observations_read_back_exactly_as_the_plain_text(name: str) -> None:
    base, plain, obfuscated = _pair(name)
    base.observation_space.seed(0)
    samples = [base.observation_space.sample() for _ in range(30)]
    obs, _ = base.reset(seed=0)
    for action in _random_actions(name, _steps(name)):
        samples.append(obs)
        obs, _, terminated, truncated, _ = base.step(action)
        if terminated or truncated:
            obs, _ = base.reset()
    for obs in samples:
        text = obfuscated.render_observation(obs)
        recovered = np.asarray(obfuscated.read_observation(text), dtype=float).reshape(-1)
        np.testing.assert_allclose(recovered, obfuscated.observation_values(obs), rtol=0,
                                   atol=plain.observation_precision + 1e-9, err_msg=text)
        plain_recovered = np.asarray(plain.read_observation(plain.render_observation(obs)), dtype=float).reshape(-1)
        np.testing.assert_allclose(recovered, plain_recovered, rtol=0, atol=1e-9, err_msg=text)


@pytest.mark.parametrize("name", OBFUSCATED)
def test_actions_round_trip_exactly(name: str) -> None:
    base, plain, obfuscated = _pair(name)
    if obfuscated.is_discrete:
        assert sorted(obfuscated.parse_action(name).action for name in obfuscated.action_names) == list(
            range(base.action_space.n))
        for index in range(base.action_space.n):
            text = obfuscated.action_to_text(index)
            position = obfuscated.action_names.index(text.split(": ", 1)[1])
            for said in (text, obfuscated.action_names[position], f"Action: {position + 1}"):
                parsed = obfuscated.parse_action(said)
                assert parsed.valid and parsed.action == index, said
        return
    base.action_space.seed(0)
    for _ in range(50):
        action = np.round(base.action_space.sample().astype(float), plain.action_digits)
        parsed = obfuscated.parse_action(obfuscated.action_to_text(action))
        assert parsed.valid and base.action_space.contains(parsed.action)
        np.testing.assert_allclose(parsed.action, action.astype(base.action_space.dtype), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(parsed.action, plain.parse_action(plain.action_to_text(action)).action)


@pytest.mark.parametrize("name", OBFUSCATED)
def test_no_giveaway_in_any_obfuscated_text(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    _, plain, obfuscated = _pair(name)
    assert _leaks(obfuscated, plain.game_description() + plain.goal_description(500)), \
        "the giveaway list should catch the plain text"
    entry = ENVS[name]
    # Atari's few-shot episodes last thousands of steps: there a short rollout goes through the same rendering.
    levels = ([1] if name in HEAVY else [1, 2] + [4] * obfuscated.has_expert) + [5] * obfuscated.has_teaching()
    texts = []
    for level in levels:
        env = gym.make(entry.text_id, level=level, obfuscate=True, fewshot_episodes=2)
        text, info = env.reset(seed=0)
        texts += [text, info["game_description"], info["goal_description"], info["action_description"],
                  json.dumps(info["action_spec"]), *info["valid_actions"], *info["knowledge"]["fewshot_examples"],
                  info["knowledge"]["guidance"] or "", *info["knowledge"]["teaching_examples"]]
        if level == 1:
            for action in _random_actions(name, _steps(name)):
                sent = int(action) if obfuscated.is_discrete else obfuscated.action_to_text(action)
                text, _, terminated, truncated, info = env.step(sent)
                texts += [text, info["action_text"]]
                if terminated or truncated:
                    text, _ = env.reset()
                    texts.append(text)
    if name in HEAVY:
        texts.append(render_trajectory(_short_rollout(name, obfuscated), 1, 400))
    leaks = {text[:80]: _leaks(obfuscated, text) for text in texts if _leaks(obfuscated, text)}
    assert not leaks, leaks


def _short_rollout(name: str, translator: ObfuscatedTranslator) -> Rollout:
    """A few random steps written as L2/L4 trajectories write them (trajectory_observation/action and legend)."""
    base = make_base_env(name)
    obs, _ = base.reset(seed=0)
    episode = Rollout("random", 0, 0.0, 0, legend=translator.trajectory_legend())
    for action in _random_actions(name, 10):
        next_obs, reward, terminated, truncated, _ = base.step(action)
        episode.steps.append({"observation": translator.trajectory_observation(obs),
                              "action": translator.trajectory_action(action), "reward": float(reward),
                              "terminated": terminated})
        episode.episode_return += float(reward)
        episode.length += 1
        obs = next_obs
    episode.final_observation = translator.trajectory_observation(obs)
    return episode


def test_seeds_choose_other_names_and_maps() -> None:
    base = make_base_env("cartpole")
    first, second = (make_translator("cartpole", base, obfuscate=True, obfuscation_seed=s) for s in (0, 1))
    obs = np.array([0.1, -0.2, 0.03, 0.4])
    assert first.render_observation(obs) != second.render_observation(obs)
    np.testing.assert_allclose(first.read_observation(first.render_observation(obs)),
                               second.read_observation(second.render_observation(obs)))


@pytest.mark.parametrize("kwargs, message", [
    ({"obfuscate": "yes"}, "obfuscate must be true or false, actually 'yes'"),
    ({"obfuscate": True, "obfuscation_seed": -1}, "obfuscation_seed must be an int >= 0, actually -1"),
    ({"obfuscate": True, "map_visible": True}, "obfuscate=True hides frozenlake's map"),
])
def test_bad_obfuscation_kwargs_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        gym.make("TextGym-FrozenLake-v0", **kwargs)


def test_obfuscated_trajectories_have_their_own_cache_entry(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    for flag in (False, True):
        gym.make("TextGym-CartPole-v0", level=4, obfuscate=flag, fewshot_episodes=1).reset(seed=0)
    files = sorted(path.name for path in (tmp_path / "trajectories").glob("*.json"))
    assert len(files) == 2 and sum("-obf0" in name for name in files) == 1


def test_textgym_eval_plays_the_obfuscated_variant(tmp_path) -> None:
    from experiments.records.results import iter_jsonl
    from experiments.run_agent import evaluate

    evaluate(compose_config("eval", ["env=frozenlake", "agent=random", "+env.kwargs.obfuscate=true",
                                     "+env.kwargs.obfuscation_seed=2", "seeds=[0]", "max_steps=5", "logger=none",
                                     "progress=false"]), tmp_path)
    steps = list(iter_jsonl(tmp_path / "steps.jsonl"))
    _, _, obfuscated = _pair("frozenlake")
    # What the agent saw and said (the rows' "env" field names the run, for the reader, not the agent).
    assert steps and all(step["observation"].startswith("Readings: ") for step in steps)
    assert not [step for step in steps if _leaks(obfuscated, step["observation"] + step["action_text"])]


@pytest.mark.parametrize("name", ["cartpole", "frozenlake", "pendulum", "hopper"])
def test_chat_env_speaks_only_the_obfuscated_text(name: str, tmp_path, monkeypatch) -> None:
    from textgym.chat import ChatEnv

    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    _, _, obfuscated = _pair(name)
    level = 5 if obfuscated.has_teaching() else 1
    env = ChatEnv(name, level=level, action_format="tool", obfuscate=True)
    messages, _ = env.reset(seed=0)
    texts = [json.dumps(env.tools)]
    for _ in range(3):
        texts += [message["content"] for message in messages]
        reply = {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "type": "function", "function": {
            "name": env.tools[0]["function"]["name"], "arguments": json.dumps({"action": _first_action(env)})}}]}
        messages, _, terminated, truncated, _ = env.step(reply)
        if terminated or truncated:
            break
    texts += [message["content"] for message in messages]
    assert not [text for text in texts if _leaks(obfuscated, text)], [_leaks(obfuscated, t) for t in texts]


def _first_action(env) -> object:
    spec = env.action_spec
    if spec["type"] == "discrete":
        return spec["names"][0]
    if spec["type"] == "vector":
        return {name: low for name, low in zip(spec["names"], spec["low"], strict=True)}
    return spec["low"]


def test_agents_system_prompt_speaks_only_the_obfuscated_text(fake_llm, tmp_path, monkeypatch) -> None:
    from experiments.run_agent import evaluate

    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    evaluate(compose_config("eval", [
        "env=cartpole", "agent=naive", "level=5", "+env.kwargs.obfuscate=true", "seeds=[0]", "max_steps=3",
        "llm=server", f"llm.base_url={fake_llm.base_url}", "llm.model=scripted", "logger=none", "llm.cache=off",
        "progress=false"]), tmp_path / "run")
    prompts = fake_llm.prompts()
    _, _, obfuscated = _pair("cartpole")
    assert prompts and "Readings:" in prompts[0]
    assert not [prompt for prompt in prompts if _leaks(obfuscated, prompt)], [_leaks(obfuscated, p) for p in prompts]


@pytest.mark.parametrize("name", [n for n in OBFUSCATED if ENVS[n].translator_class().has_teaching()])
def test_worked_examples_name_the_experts_action_in_the_new_terms(name: str) -> None:
    _, _, obfuscated = _pair(name)
    expert = obfuscated.expert(obfuscated.teaching_env())
    examples = obfuscated.teaching_examples()
    assert len(examples) == len(obfuscated.teaching_states) > 0
    for example, state in zip(examples, obfuscated.teaching_states, strict=True):
        parsed = obfuscated.parse_action(example.rsplit("Action: ", 1)[1])
        assert parsed.valid, example
        np.testing.assert_allclose(np.asarray(parsed.action, dtype=float), np.asarray(expert(state), dtype=float),
                                   atol=0.5 * 10**-obfuscated.inner.action_digits + 1e-6, err_msg=example)
