"""A short text episode of the expert on CartPole at level 5 (``python -m textgym.demo``)."""

from __future__ import annotations

import gymnasium as gym

import textgym  # noqa: F401  (registers the ids)


def main() -> None:
    env = gym.make("TextGym-CartPole-v0", level=5)
    obs, info = env.reset(seed=0)
    print(info["game_description"], info["goal_description"], info["action_description"], sep="\n\n")
    expert = env.get_wrapper_attr("translator").expert_policy(env.unwrapped)
    total, done = 0.0, False
    while not done:
        action = expert(info["raw_obs"])
        print(f"\n{obs}\n-> Action: {action + 1}")
        obs, reward, terminated, truncated, info = env.step(f"Action: {action + 1}")
        total += float(reward)
        done = terminated or truncated
        if total >= 5:
            break
    print(f"\nreturn after {int(total)} steps: {total}")


if __name__ == "__main__":
    main()
