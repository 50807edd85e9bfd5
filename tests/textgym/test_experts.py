"""The expert policies behind L4/L5 really are expert: measured over several seeds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from textgym.registration import ENVS
from textgym.trajectories import rollout

# Episodes to average and the score the expert must reach. None = the task's reward_threshold;
# a number where gymnasium gives none (Pendulum: good ~ -150; Blackjack basic strategy ~ -0.05/hand;
# CliffWalking: the optimal return -13; Taxi-v4: gymnasium's threshold 8 is above the optimum, whose mean over
# all start states is 7.93 -- the expert matches a shortest-path search on every seed, scoring 7.63 on seeds 0-199).
EXPERT_TARGETS: dict[str, tuple[int, float | None]] = {
    "cartpole": (10, None),
    "acrobot": (20, None),
    "mountaincar": (50, None),
    "mountaincar_continuous": (20, None),
    "pendulum": (20, -200.0),
    "lunarlander": (20, None),
    "blackjack": (3000, -0.08),
    "taxi": (200, 7.5),
    "cliffwalking": (3, -13.0),
    "frozenlake": (1000, None),
    # Atari (whole games, ALE v5 sticky actions): above the human scores of Mnih et al. (2015): Pong 9.3,
    # Breakout 31.8, Freeway 29.6. Measured on seeds 0-2: Pong 13, 16, 13; Breakout 67, 54, 112; Freeway 32 each.
    "pong": (2, 9.3),
    "breakout": (3, 31.8),
    "freeway": (2, 29.6),
    # MuJoCo, where TextGym has a controller of its own (the others need a policy file: see test_mujoco.py).
    # InvertedPendulum: LQR, 1,000 (the maximum) on every seed; InvertedDoublePendulum: LQR, ~9,360 of a
    # possible ~9,360; Reacher: IK + joint PD, -3.37 on seeds 0-49, gymnasium's threshold -3.75 (zoo PPO ~ -4).
    "inverted_pendulum": (3, 1000.0),
    "inverted_double_pendulum": (3, 9350.0),
    "reacher": (50, None),
    "swimmer": (5, 350.0),  # a linear policy found by random search: 354.5 on seeds 0-9 (zoo PPO 281.6)
}


@pytest.mark.parametrize("name", [name for name, entry in ENVS.items() if entry.translator_class().has_controller])
def test_expert_reaches_target(name: str) -> None:
    episodes, target = EXPERT_TARGETS[name]
    if target is None:
        target = gym.spec(ENVS[name].text_id).reward_threshold
    assert target is not None
    returns = [rollout(name, "expert", seed, keep_text=False).episode_return for seed in range(episodes)]
    assert np.mean(returns) >= target, f"{name} expert mean {np.mean(returns):.3f} < {target}"


@pytest.mark.parametrize("name", ["cartpole", "frozenlake"])
def test_expert_beats_random(name: str) -> None:
    expert = np.mean([rollout(name, "expert", s, keep_text=False).episode_return for s in range(20)])
    random = np.mean([rollout(name, "random", s, keep_text=False).episode_return for s in range(20)])
    assert expert > random


def test_every_expert_has_a_measured_target_and_the_others_none() -> None:
    """An expert exists exactly where a target above is measured; the rest need a policy file the user trains."""
    with_controller = {name for name, entry in ENVS.items() if entry.translator_class().has_controller}
    assert with_controller == set(EXPERT_TARGETS)
    for name in set(ENVS) - with_controller:  # Pusher, Hopper, Walker2d, HalfCheetah, Ant
        translator_class = ENVS[name].translator_class()
        assert not translator_class.has_teaching(), f"{name} has L5 teaching but no expert to check it against"


def test_no_policy_file_is_shipped_as_an_expert() -> None:
    """A weak policy is never shipped as "expert": the package holds no trained model or statistics file, so an
    L4 expert is TextGym's own measured controller or a file the user trained and passed by path."""
    from textgym.templating import PACKAGE_DIR

    shipped = [path for pattern in ("*.zip", "*.pkl", "*.pt", "*.pth", "*.npz", "*.onnx", "*.safetensors")
               for path in PACKAGE_DIR.rglob(pattern)]
    assert shipped == []
