"""Seeded rollouts of the random and expert policies, rendered as few-shot text for L2/L4/L5.

Rollouts are deterministic in (env, base-task kwargs, policy, seed) and cached under ``$TEXTGYM_CACHE``
(default ``~/.cache/textgym``) keyed by those and by the env's translator and templates, so they are
never committed and always regenerable::

    textgym-trajectories --env all --policy all   # (re)build every cache entry
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym

from textgym.levels import FEWSHOT_SEED
from textgym.registration import ENVS, env_entry
from textgym.templating import PACKAGE_DIR, render
from textgym.translator import Policy, Translator
from textgym.wrapper import make_base_env

__all__ = ["Rollout", "rollout", "fewshot_examples", "cache_dir", "make_policy", "main"]

logger = logging.getLogger(__name__)
PolicyKind = Literal["random", "expert"]
CACHE_FORMAT = 1
# Modules outside the env folders whose code shapes the rendered text or the expert's moves.


@dataclass
class Rollout:
    """One episode of a policy, in text and numbers."""

    policy: str
    seed: int
    episode_return: float
    length: int
    steps: list[dict[str, Any]]  # observation text, action text, reward, done


def cache_dir() -> Path:
    return Path(os.environ.get("TEXTGYM_CACHE", Path.home() / ".cache" / "textgym")) / "trajectories"


def make_policy(kind: PolicyKind, env: gym.Env, translator: Translator, seed: int) -> Policy:
    """The random policy (seeded action-space samples) or the translator's expert."""
    if kind == "random":
        env.action_space.seed(seed)
        return lambda _obs: env.action_space.sample()
    if kind == "expert":
        return translator.expert_policy(env)
    raise ValueError(f"unknown policy {kind!r}: expected 'random' or 'expert'")


def rollout(env_name: str, kind: PolicyKind, seed: int, max_steps_kept: int | None = None,
            base_kwargs: Mapping[str, Any] | None = None) -> Rollout:
    """Play one episode of ``kind`` on ``env_name`` from ``seed`` under the text env's step limit.

    Args:
        env_name: config name or text id of the env.
        kind: ``"random"`` or ``"expert"``.
        seed: seeds the env (and the random policy).
        max_steps_kept: steps whose text is kept (all when ``None``); the return covers the whole episode.
        base_kwargs: kwargs for the base task, as in ``gym.make("TextGym-...", **base_kwargs)``; the
            translator and the expert are built from that env, so text and policy follow them.
    """
    entry = env_entry(env_name)
    env = make_base_env(entry.name, **dict(base_kwargs or {}))
    limit = gym.spec(entry.text_id).max_episode_steps
    translator = entry.translator_class()(env)
    policy = make_policy(kind, env, translator, seed)
    obs, _ = env.reset(seed=seed)
    steps: list[dict[str, Any]] = []
    total, length, done = 0.0, 0, False
    while not done and (limit is None or length < limit):
        action = policy(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        if max_steps_kept is None or length < max_steps_kept:
            steps.append({"observation": translator.render_observation(obs),
                          "action": translator.action_to_text(action), "reward": float(reward), "done": done})
        total += float(reward)
        length += 1
        obs = next_obs
    env.close()
    return Rollout(kind, seed, total, length, steps)


def _translator_fingerprint(env_name: str) -> str:
    """Changes whenever any TextGym source or template changes, so stale caches are never reused.

    The whole package counts: a translator may build on another env's translator or templates, and
    rebuilding a few rollouts is cheap.
    """
    digest = hashlib.sha256(f"{CACHE_FORMAT}-{env_name}".encode())
    for path in sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.j2")]):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _kwargs_fingerprint(base_kwargs: Mapping[str, Any]) -> str:
    """A short stable digest of base-task kwargs (values without a JSON form count by their ``repr``)."""
    text = json.dumps(dict(base_kwargs), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fewshot_examples(env_name: str, kind: PolicyKind, episodes: int = 2, max_steps_shown: int = 8,
                     seed: int = FEWSHOT_SEED, base_kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """``episodes`` rendered rollouts of ``kind`` (seeds ``seed``, ``seed+1``, ...), cached on disk.

    ``base_kwargs`` pick the base task as in :func:`rollout`; each set of them has its own cache entry.
    """
    base_kwargs = dict(base_kwargs or {})
    key = f"{env_name}-{kind}-s{seed}-e{episodes}-k{max_steps_shown}-{_translator_fingerprint(env_name)}"
    if base_kwargs:
        key += f"-kw{_kwargs_fingerprint(base_kwargs)}"
    path = cache_dir() / f"{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())["examples"]
        except (json.JSONDecodeError, KeyError, OSError) as error:
            logger.warning("ignoring unreadable trajectory cache %s: %s", path, error)
    rollouts = [rollout(env_name, kind, seed + i, max_steps_kept=max_steps_shown, base_kwargs=base_kwargs)
                for i in range(episodes)]
    examples = [render("trajectory.j2", number=i + 1, **asdict(r)) for i, r in enumerate(rollouts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"examples": examples, "returns": [r.episode_return for r in rollouts]}))
    tmp.replace(path)  # atomic: concurrent workers never read half a file
    return examples


def main(argv: list[str] | None = None) -> None:
    """Command line: regenerate the few-shot cache (``textgym-trajectories --env all``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="all", help=f"one of {', '.join(ENVS)} or 'all'")
    parser.add_argument("--policy", default="all", choices=["random", "expert", "all"])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max-steps-shown", type=int, default=8)
    parser.add_argument("--seed", type=int, default=FEWSHOT_SEED)
    args = parser.parse_args(argv)
    names = list(ENVS) if args.env == "all" else [env_entry(args.env).name]
    kinds: list[PolicyKind] = ["random", "expert"] if args.policy == "all" else [args.policy]
    for name in names:
        for kind in kinds:
            examples = fewshot_examples(name, kind, args.episodes, args.max_steps_shown, args.seed)
            print(f"{name:24s} {kind:7s} {len(examples)} episodes -> {cache_dir()}")


if __name__ == "__main__":
    main()
