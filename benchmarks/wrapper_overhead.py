"""Per-step cost of the text wrapper against the raw env, for every TextGym env.

    python benchmarks/wrapper_overhead.py [--steps 2000] [--envs hopper ant pong ...]

Both loops play the same seeded random actions; the text loop renders each observation and parses
the action text back, which is what a language agent pays on top of the simulator.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import textgym
from textgym.wrapper import make_base_env


def time_loop(env: gym.Env, actions: list, steps: int) -> float:
    env.reset(seed=0)
    started = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i % len(actions)])
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--envs", nargs="+", default=list(textgym.ENVS), metavar="ENV",
                        help="config names (default: every env)")
    args = parser.parse_args()
    try:
        entries = [textgym.env_entry(name) for name in args.envs]
    except ValueError as error:  # an unknown name: one line saying what exists
        parser.error(str(error))
    print(f"{'env':24s} {'raw us/step':>12s} {'text us/step':>13s} {'overhead us':>12s} {'ratio':>7s}")
    for entry in entries:
        name = entry.name
        if entry.missing_extra():  # the MuJoCo and Atari envs need their extras
            print(f"{name:24s} skipped: pip install \"textgym[{entry.extra}]\"")
            continue
        raw = make_base_env(name)
        text = gym.make(entry.text_id)
        raw.action_space.seed(0)
        raw_actions = [raw.action_space.sample() for _ in range(256)]
        translator = text.get_wrapper_attr("translator")
        text_actions = [f"Action: {translator.action_to_text(a)}" for a in raw_actions]
        raw_cost, text_cost = time_loop(raw, raw_actions, args.steps), time_loop(text, text_actions, args.steps)
        print(f"{name:24s} {raw_cost * 1e6:12.1f} {text_cost * 1e6:13.1f} {(text_cost - raw_cost) * 1e6:12.1f} "
              f"{text_cost / raw_cost:7.1f}")


if __name__ == "__main__":
    main()
