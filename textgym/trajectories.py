"""Seeded rollouts of the random and expert policies, rendered as whole trajectories for L2/L4.

Each trajectory is rendered within a token budget (estimated as characters / :data:`CHARS_PER_TOKEN`; a legend
comes on top).
One that does not fit keeps its first and last steps and says how many steps between them were left
out; nothing is cut silently, and the header always gives the whole episode's return and length.
Steps are written as the translator's ``trajectory_observation``/``trajectory_action`` say: as the agent
sees them, or, where that text is long (MuJoCo: 30-400 tokens a step), compactly, as numbers in the
observation text's order, with a legend after the header saying how to read them.

Rollouts are deterministic in (env, base-task kwargs, text options, policy, seed) and cached under
``$TEXTGYM_CACHE`` (default ``~/.cache/textgym``) keyed by those, by the budget and by the package's
source and templates, so they are never committed and always regenerable::

    textgym-trajectories --env all --policy all   # (re)build every default cache entry
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from textgym.factories import make_base_env, make_translator
from textgym.levels import DEFAULT_FEWSHOT_EPISODES, DEFAULT_FEWSHOT_TOKEN_BUDGET, FEWSHOT_SEED, PolicyKind
from textgym.registration import ENVS, env_entry
from textgym.templating import PACKAGE_DIR, render
from textgym.translator import Policy, Translator

__all__ = ["Rollout", "FewshotTrajectories", "rollout", "render_trajectory", "fewshot_trajectories",
           "estimate_tokens", "cache_dir", "make_policy", "main", "CHARS_PER_TOKEN"]

logger = logging.getLogger(__name__)
CACHE_FORMAT = 3  # 3: compact steps with a legend where the translator writes them so
CHARS_PER_TOKEN = 4
"""Characters per token of the budget's estimate: about right for English prose, low for dense numbers."""

# Rendered sets already loaded in this process, by cache file: each is built or read once per process.
_LOADED: dict[Path, FewshotTrajectories] = {}


@dataclass
class Rollout:
    """One episode of a policy, in text and numbers.

    Attributes:
        policy: ``"random"`` or ``"expert"``.
        seed: the env's reset seed (and the random policy's).
        episode_return: the whole episode's return.
        length: the whole episode's number of steps.
        steps: per step, the observation text the agent would have seen, the action text, the reward and
            whether the step ended the episode (``terminated``); empty when no text was kept.
        final_observation: the text after the last step (where the episode ended).
        truncated: the episode was stopped by the step limit.
        legend: how the steps are written, when compactly (the translator's ``trajectory_legend``); else "".
    """

    policy: str
    seed: int
    episode_return: float
    length: int
    steps: list[dict[str, Any]] = field(default_factory=list)
    final_observation: str = ""
    truncated: bool = False
    legend: str = ""


@dataclass(frozen=True)
class FewshotTrajectories:
    """The offline trajectories of one level: rendered texts and the numbers an agent can summarize.

    Attributes:
        examples: one text per episode, each the whole trajectory within the token budget.
        returns: each episode's return.
        lengths: each episode's number of steps.
    """

    examples: list[str]
    returns: list[float]
    lengths: list[int]


def estimate_tokens(text: str) -> int:
    """The token estimate the budgets use: characters / :data:`CHARS_PER_TOKEN`, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def cache_dir() -> Path:
    """Where built trajectories are kept: ``trajectories/`` under ``$TEXTGYM_CACHE`` or ``~/.cache/textgym``."""
    return Path(os.environ.get("TEXTGYM_CACHE", Path.home() / ".cache" / "textgym")) / "trajectories"


def make_policy(kind: PolicyKind, env: gym.Env, translator: Translator, seed: int) -> Policy:
    """The random policy (seeded action-space samples) or the translator's expert."""
    if kind == "random":
        env.action_space.seed(seed)
        return lambda _obs: env.action_space.sample()
    if kind == "expert":
        return translator.expert(env)
    raise ValueError(f"unknown policy {kind!r}: expected 'random' or 'expert'")


def rollout(env_name: str, kind: PolicyKind, seed: int, keep_text: bool = True,
            base_kwargs: Mapping[str, Any] | None = None, text_options: Mapping[str, Any] | None = None) -> Rollout:
    """Play one episode of ``kind`` on ``env_name`` from ``seed`` under the text env's step limit.

    Args:
        env_name: config name or text id of the env.
        kind: ``"random"`` or ``"expert"``.
        seed: seeds the env (and the random policy).
        keep_text: render each step's text (``False``: numbers only, for fast measurements).
        base_kwargs: kwargs for the base task, as in ``gym.make("TextGym-...", **base_kwargs)``; the
            translator and the expert are built from that env, so text and policy follow them.
        text_options: the translator's options (``{"map_visible": True}``), so the text is the one the
            agent's env speaks.
    """
    entry = env_entry(env_name)
    env = make_base_env(entry.name, **dict(base_kwargs or {}))
    limit = gym.spec(entry.text_id).max_episode_steps
    translator = make_translator(entry.name, env, **dict(text_options or {}))
    policy = make_policy(kind, env, translator, seed)
    obs, _ = env.reset(seed=seed)
    episode = Rollout(kind, seed, 0.0, 0, legend=translator.trajectory_legend() if keep_text else "")
    text = translator.trajectory_observation(obs) if keep_text else ""
    terminated = False
    while not terminated and (limit is None or episode.length < limit):
        action = policy(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        terminated = terminated or truncated
        if keep_text:
            episode.steps.append({"observation": text, "action": translator.trajectory_action(action),
                                  "reward": float(reward), "terminated": terminated})
            text = translator.render_step(obs, action, float(reward), next_obs, for_trajectory=True)
        episode.episode_return += float(reward)
        episode.length += 1
        obs = next_obs
    env.close()
    episode.final_observation = text
    episode.truncated = not terminated
    return episode


def render_trajectory(episode: Rollout, number: int, token_budget: int) -> str:
    """``episode`` as text within ``token_budget`` estimated tokens: as many steps as fit, first and last kept.

    The header (return, length), the legend and the final observation are always shown; if even they do not fit,
    the text shows no step and says how many were left out. A compact trajectory's legend (MuJoCo's, up to 280
    tokens) comes on top of the budget, so that it takes nothing from the steps: the budget buys the same steps
    whether or not they need explaining.
    """
    steps = [{**step, "number": index} for index, step in enumerate(episode.steps, start=1)]
    token_budget += estimate_tokens(episode.legend)

    def text_showing(shown: int) -> str:
        head = (shown + 1) // 2
        tail = steps[len(steps) - (shown - head):] if shown > head else []
        return render("trajectory.j2", number=number, policy=episode.policy, episode_return=episode.episode_return,
                      length=episode.length, truncated=episode.truncated, head=steps[:head], tail=tail,
                      elided=len(steps) - shown, final_observation=episode.final_observation, legend=episode.legend)

    whole = text_showing(len(steps))
    if estimate_tokens(whole) <= token_budget:
        return whole
    low, high = 0, len(steps) - 1  # the largest number of shown steps that fits lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(text_showing(middle)) <= token_budget:
            low = middle
        else:
            high = middle - 1
    return text_showing(low)


@functools.cache
def _source_fingerprint() -> str:
    """Changes whenever any TextGym source or template changes, so stale caches are never reused.

    The whole package counts: a translator may build on another env's translator or templates, and
    rebuilding a few rollouts is cheap. Read once per process.
    """
    digest = hashlib.sha256(str(CACHE_FORMAT).encode())
    for path in sorted([*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.j2")]):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _kwargs_fingerprint(kwargs: Mapping[str, Any]) -> str:
    """A short stable digest of kwargs (values without a JSON form count by their ``repr``)."""
    text = json.dumps(dict(kwargs), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def fewshot_trajectories(env_name: str, kind: PolicyKind, episodes: int = DEFAULT_FEWSHOT_EPISODES,
                         token_budget: int = DEFAULT_FEWSHOT_TOKEN_BUDGET, seed: int = FEWSHOT_SEED,
                         base_kwargs: Mapping[str, Any] | None = None,
                         text_options: Mapping[str, Any] | None = None) -> FewshotTrajectories:
    """``episodes`` whole rollouts of ``kind`` (seeds ``seed``, ``seed+1``, ...), each rendered within ``token_budget``.

    Built once per process and cached on disk; ``base_kwargs`` and ``text_options`` pick the task and
    its text as in :func:`rollout`, and each set of them has its own cache entry.
    """
    entry = env_entry(env_name)
    key = f"{entry.name}-{kind}-s{seed}-e{episodes}-t{token_budget}-{_source_fingerprint()}"
    if (text_options or {}).get("obfuscate"):  # the obfuscated variant's texts (textgym.obfuscation), named so
        key += f"-obf{text_options['obfuscation_seed']}"  # type: ignore[index]  # set: obfuscate is
    extras = {**dict(base_kwargs or {}), **{f"text:{k}": v for k, v in dict(text_options or {}).items()}}
    if extras:
        key += f"-kw{_kwargs_fingerprint(extras)}"
    path = cache_dir() / f"{key}.json"
    if path in _LOADED:
        return _LOADED[path]
    loaded = _read_cache(path)
    if loaded is None:
        rollouts = [rollout(entry.name, kind, seed + i, base_kwargs=base_kwargs, text_options=text_options)
                    for i in range(episodes)]
        loaded = FewshotTrajectories(
            examples=[render_trajectory(episode, i + 1, token_budget) for i, episode in enumerate(rollouts)],
            returns=[episode.episode_return for episode in rollouts],
            lengths=[episode.length for episode in rollouts])
        path.parent.mkdir(parents=True, exist_ok=True)
        # Per process and thread: sessions of one server (threads) may build the same file at once.
        tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps({"examples": loaded.examples, "returns": loaded.returns,
                                   "lengths": loaded.lengths}))
        tmp.replace(path)  # atomic: concurrent workers never read half a file
    _LOADED[path] = loaded
    return loaded


def _read_cache(path: Path) -> FewshotTrajectories | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return FewshotTrajectories(list(data["examples"]), [float(r) for r in data["returns"]],
                                   [int(n) for n in data["lengths"]])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, OSError) as error:
        logger.warning("ignoring unreadable trajectory cache %s: %s", path, error)
        return None


def main(argv: list[str] | None = None) -> None:
    """Command line: regenerate the few-shot cache (``textgym-trajectories --env all``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="all", help=f"one of {', '.join(ENVS)} or 'all'")
    parser.add_argument("--policy", default="all", choices=["random", "expert", "all"])
    parser.add_argument("--episodes", type=int, default=DEFAULT_FEWSHOT_EPISODES)
    parser.add_argument("--token-budget", type=int, default=DEFAULT_FEWSHOT_TOKEN_BUDGET,
                        help="estimated tokens per trajectory (characters / 4)")
    parser.add_argument("--seed", type=int, default=FEWSHOT_SEED)
    parser.add_argument("--expert-policy-path", default=None,
                        help="a model.zip saved by textgym-ppo, as the expert of an env TextGym has none for")
    args = parser.parse_args(argv)
    names = list(ENVS) if args.env == "all" else [env_entry(args.env).name]
    kinds: list[PolicyKind] = ["random", "expert"] if args.policy == "all" else [args.policy]
    for name in names:
        options: dict[str, Any] = {}
        if args.expert_policy_path is not None:
            translator = make_translator(name, make_base_env(name))
            translator.use_policy_file(args.expert_policy_path)
            options = {key: translator.options[key] for key in ("expert_policy_path", "expert_policy_sha256")}
        for kind in kinds:
            if kind == "expert" and not options and not env_entry(name).translator_class().has_controller:
                print(f"{name:24s} expert  none: pass --expert-policy-path (a model.zip from textgym-ppo env={name})")
                continue
            found = fewshot_trajectories(name, kind, args.episodes, args.token_budget, args.seed,
                                         text_options=options)
            print(f"{name:24s} {kind:7s} {len(found.examples)} episodes, returns "
                  f"{', '.join(f'{r:g}' for r in found.returns)} -> {cache_dir()}")


if __name__ == "__main__":
    main()
