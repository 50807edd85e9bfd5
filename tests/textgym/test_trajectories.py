"""L2/L4 offline knowledge: whole seeded trajectories, each within its token budget, cached and never cut silently."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import textgym  # noqa: F401  (registers the ids)
from textgym import trajectories
from textgym.trajectories import estimate_tokens, fewshot_trajectories, render_trajectory, rollout
from textgym.wrapper import DEFAULT_FEWSHOT_TOKEN_BUDGET, make_base_env, make_translator

STEP_LINE = re.compile(r"^Step (\d+): ", re.MULTILINE)
ELISION = re.compile(r"\[\.\.\. (\d+) steps left out: steps (\d+) to (\d+) \.\.\.\]")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))


def shown_steps(text: str) -> list[int]:
    return [int(number) for number in STEP_LINE.findall(text)]


@pytest.mark.parametrize("budget", [100, 250, DEFAULT_FEWSHOT_TOKEN_BUDGET, 2000])
def test_long_trajectory_keeps_head_and_tail_within_budget(budget: int) -> None:
    episode = rollout("cartpole", "expert", seed=0)
    assert episode.length == 500 and len(episode.steps) == 500 and episode.truncated
    text = render_trajectory(episode, number=1, token_budget=budget)
    assert estimate_tokens(text) <= budget
    assert text.startswith("Example episode 1 (expert policy): return 500.00 after 500 steps, "
                           "stopped by the step limit")
    shown = shown_steps(text)
    head = shown[:(len(shown) + 1) // 2]
    tail = shown[len(head):]
    # The first and the last steps, in order, and one line that counts exactly the steps left out between them.
    assert head == list(range(1, len(head) + 1)) and tail == list(range(501 - len(tail), 501))
    elided, first, last = (int(n) for n in ELISION.search(text).groups())
    assert (first, last) == (len(head) + 1, 500 - len(tail)) and elided == last - first + 1
    assert len(head) + elided + len(tail) == 500
    assert f"the {elided} steps between them are left out" in text
    assert text.splitlines()[-1] == f"End: {episode.final_observation}"
    # Every shown step is exactly the step it names.
    for number in shown:
        step = episode.steps[number - 1]
        assert f"Step {number}: {step['observation']}\nAction: {step['action']} -> reward 1.00" in text


def test_budget_fills_up_and_short_trajectories_stay_whole() -> None:
    episode = rollout("cartpole", "expert", seed=0)
    counts = [len(shown_steps(render_trajectory(episode, 1, budget))) for budget in (150, 400, 1600)]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    # The budget is used, not wasted: one more step would not have fitted.
    longest_step = max(estimate_tokens(f"Step 500: {step['observation']}\nAction: {step['action']} -> reward 1.00.\n")
                       for step in episode.steps)
    assert estimate_tokens(render_trajectory(episode, 1, 400)) > 400 - longest_step
    short = rollout("cliffwalking", "expert", seed=0)
    text = render_trajectory(short, 1, DEFAULT_FEWSHOT_TOKEN_BUDGET)
    assert shown_steps(text) == list(range(1, 14)) and "left out" not in text
    assert text.splitlines()[-1] == "End: You are at row 3, column 11, on the goal."


def test_fewshot_trajectories_are_deterministic_and_cached(tmp_path) -> None:
    first = fewshot_trajectories("cartpole", "random", episodes=3, token_budget=300, seed=5)
    files = list((tmp_path / "trajectories").glob("*.json"))
    assert len(files) == 1
    assert len(first.examples) == len(first.returns) == len(first.lengths) == 3
    episodes = [rollout("cartpole", "random", seed) for seed in (5, 6, 7)]
    assert first.returns == [episode.episode_return for episode in episodes]
    assert first.lengths == [episode.length for episode in episodes]
    assert all(estimate_tokens(example) <= 300 for example in first.examples)
    # A new process reads the file; without it, the same seeds rebuild the same texts.
    trajectories._LOADED.clear()
    assert fewshot_trajectories("cartpole", "random", episodes=3, token_budget=300, seed=5) == first
    files[0].unlink()
    trajectories._LOADED.clear()
    assert fewshot_trajectories("cartpole", "random", episodes=3, token_budget=300, seed=5) == first
    assert fewshot_trajectories("cartpole", "random", episodes=3, token_budget=300, seed=6) != first
    assert len(list((tmp_path / "trajectories").glob("*.json"))) == 2
    # An unreadable cache file is rebuilt, not trusted.
    files[0].write_text("{not json")
    trajectories._LOADED.clear()
    assert fewshot_trajectories("cartpole", "random", episodes=3, token_budget=300, seed=5) == first


def test_text_env_knowledge_matches_the_rollouts() -> None:
    env = gym.make("TextGym-FrozenLake-v0", level=4, fewshot_token_budget=600)
    knowledge = env.reset(seed=0)[1]["knowledge"]
    episodes = [rollout("frozenlake", "expert", textgym.levels.FEWSHOT_SEED + i) for i in range(5)]
    assert knowledge["fewshot_returns"] == [episode.episode_return for episode in episodes]
    assert knowledge["fewshot_lengths"] == [episode.length for episode in episodes]
    assert all(estimate_tokens(example) <= 600 for example in knowledge["fewshot_examples"])
    assert all(example.startswith(f"Example episode {i + 1} (expert policy): return 1.00 after {episode.length} steps")
               for i, (example, episode) in enumerate(zip(knowledge["fewshot_examples"], episodes, strict=True)))


def test_fall_off_the_cliff_is_told_in_trajectories() -> None:
    episode = rollout("cliffwalking", "random", seed=0)
    falls = [i for i, step in enumerate(episode.steps) if step["reward"] == -100]
    assert falls, "the random walk never fell: pick another seed"
    for i in falls:
        after = episode.steps[i + 1]["observation"] if i + 1 < len(episode.steps) else episode.final_observation
        assert re.fullmatch(r"You stepped onto the cliff at row 3, column \d+ and were sent back to the start "
                            r"\(-100\)\. You are at row 3, column 0, on the start\.", after), after


def test_cli_builds_the_cache(tmp_path, capsys) -> None:
    trajectories.main(["--env", "blackjack", "--policy", "expert", "--episodes", "2", "--token-budget", "200"])
    assert "blackjack                expert  2 episodes" in capsys.readouterr().out
    assert len(list((tmp_path / "trajectories").glob("blackjack-expert-*-e2-t200-*.json"))) == 1


# ---- MuJoCo: compact steps with a legend (a MuJoCo observation in words is 30-400 tokens) ----
MUJOCO = [name for name, entry in textgym.ENVS.items() if entry.extra == "mujoco"]


def _read_compact(translator, text: str) -> np.ndarray:
    """The raw observation from a compact step, read the way the legend says: groups split by " | "."""
    parts = text.split(" | ")
    assert len(parts) == len(translator.groups), text
    values = np.zeros(len(translator.layout))
    for part, (title, indices) in zip(parts, translator.groups.items(), strict=True):
        if part == "0" and title in translator.compressible_groups:
            continue  # "a group of contact forces that is all zero is written 0"
        numbers = [float(number) for number in part.split(" ")]
        assert len(numbers) == len(indices), (title, part)
        values[indices] = numbers
    return values


@pytest.mark.parametrize("name", MUJOCO)
def test_mujoco_compact_steps_read_back_to_the_observation_and_the_action(name: str) -> None:
    base = make_base_env(name)
    translator = make_translator(name, base)
    legend = translator.trajectory_legend()
    assert legend.startswith("Each step's observation is written as numbers only")
    if translator.is_vector:
        assert f"Each action is a list [{', '.join(translator.action_names)}]." in legend
    base.action_space.seed(0)
    obs, _ = base.reset(seed=0)
    for _ in range(30):
        action = base.action_space.sample()
        compact = translator.trajectory_observation(obs)
        assert len(compact) < len(translator.render_observation(obs)) / 2
        np.testing.assert_allclose(_read_compact(translator, compact), obs, atol=translator.observation_precision)
        parsed = translator.parse_action(translator.trajectory_action(action))  # an answer an agent may give
        assert parsed.valid
        np.testing.assert_allclose(parsed.action, action, atol=0.005 + 1e-6)
        obs, _, terminated, _, _ = base.step(action)
        if terminated:
            obs, _ = base.reset(seed=1)


@pytest.mark.parametrize("name", MUJOCO)
def test_mujoco_trajectories_show_useful_steps_within_the_default_budget(name: str) -> None:
    episode = rollout(name, "random", textgym.levels.FEWSHOT_SEED)
    text = render_trajectory(episode, 1, DEFAULT_FEWSHOT_TOKEN_BUDGET)
    # The legend comes on top of the budget: the steps keep all of it.
    assert estimate_tokens(text) <= DEFAULT_FEWSHOT_TOKEN_BUDGET + estimate_tokens(episode.legend)
    assert text.splitlines()[1] == episode.legend and "|" in episode.final_observation
    shown = shown_steps(text)
    # Ant writes 105 numbers a step (75 tokens with its action): three fit; every other task shows five or more
    # (the whole-word text showed 0-2 of them on the long tasks, Ant none).
    assert len(shown) >= min(episode.length, 3 if name == "ant" else 5), (name, shown)
    for number in shown:
        step = episode.steps[number - 1]
        assert f"Step {number}: {step['observation']}\nAction: {step['action']} -> reward" in text
