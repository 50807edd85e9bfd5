"""textgym-compare: the main job. PPO, the random anchor and language agents on the same tasks, then the report.

    textgym-compare                                   # conf/compare.yaml: CartPole + FrozenLake, L1/L5, naive/exe
    textgym-compare envs=[blackjack] levels=[1,2,3,4,5] agents=[cot,reflexion] llm=openai

Steps: (1) ``textgym-ppo`` per env (trained on the base task, evaluated on the agents' seeds); (2) the random
agent per env; (3) every env x level x agent through ``textgym-eval``'s code, all in one event loop against one
LLM client so the model server stays busy; (4) ``textgym-report`` over everything. Each step resumes from the
result files, so rerunning the command after an interruption finishes the job without redoing work.

A part that fails (a PPO training, a group that cannot start, episodes whose LLM calls fail for good) does
not stop the others: the report is still written, with a failures table, the failures are printed, and the
command exits 1 (2 for a config it cannot compose; 130/143 when interrupted). Rerunning retries them.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from experiments import run_ppo
from experiments.cli import (
    CONFIG_ERRORS,
    Interrupted,
    exit_on_config_error,
    exit_on_interrupt,
    run_async,
    stop_on_signals,
)
from experiments.config import loggable_config, quiet_libraries, register_resolvers, start_wandb
from experiments.records.results import error_text, load_episodes
from experiments.reports.contamination import CONTAMINATION_PNG
from experiments.reports.costs import LANGUAGE_AGENTS, cpu_clock
from experiments.reports.report import failures_table, markdown_table, write_report
from experiments.reports.viewer import write_viewer
from experiments.run_agent import EvalOutcome, evaluate, evaluate_async, format_summary
from experiments.running.llm_session import llm_session
from experiments.running.progress import RunProgress
from experiments.variants import variant_suffix
from textgym.levels import level_spec
from textgym.wrapper import registered_step_limit

__all__ = ["compare", "main", "CompareOutcome", "TimeEstimate", "estimate_time"]

logger = logging.getLogger(__name__)
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


PER_ENV_KEYS = ("max_steps", "episodes", "ppo_overrides")
"""What ``per_env`` may set for one env: ``max_steps`` and ``episodes`` for every contender on it (in place of the
comparison-wide ones), ``ppo_overrides`` after the comparison-wide ones (PPO's budget for that env)."""


def env_setting(cfg: DictConfig, env: str, key: str) -> Any:
    """``cfg.per_env[env][key]`` where the comparison sets one for ``env``, else the comparison-wide ``cfg[key]``."""
    settings = (cfg.get("per_env") or {}).get(env) or {}
    return settings[key] if key in settings else cfg[key]


def validate_compare(cfg: DictConfig) -> None:
    """Check what Hydra cannot type-check (``per_env``, ``anchor_episodes``), naming what is allowed."""
    for env, settings in (cfg.get("per_env") or {}).items():
        unknown = [key for key in (settings or {}) if key not in PER_ENV_KEYS]
        if unknown:
            raise ValueError(f"per_env.{env}.{unknown[0]} is not a per-env setting: expected "
                             f"{', '.join(PER_ENV_KEYS)}")
    obfuscation_variants(cfg)  # obfuscate: false | true | both
    anchor = cfg.get("anchor_episodes")
    if anchor is not None and (isinstance(anchor, bool) or not isinstance(anchor, int) or anchor < 1):
        raise ValueError(f"anchor_episodes must be an int >= 1 (or null: the agents' episodes), got {anchor!r}")


def _anchor_episodes(cfg: DictConfig, env: str) -> int:
    """Episodes per seed for PPO and random: many (they cost milliseconds), so their lines mean something."""
    return cfg.get("anchor_episodes") or env_setting(cfg, env, "episodes") or 1


def obfuscation_variants(cfg: DictConfig) -> list[int | None]:
    """The text variants each language agent plays: ``None`` = plain, else the obfuscation seed.

    ``obfuscate``: false (plain), true (obfuscated) or both. PPO and random do not read the text: they play once.

    Raises:
        ValueError: ``obfuscate`` is none of false, true, both.
    """
    obfuscate, seed = cfg.get("obfuscate", False), cfg.get("obfuscation_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"obfuscation_seed must be an int >= 0, got {seed!r}")
    variants: dict[bool | str, list[int | None]] = {False: [None], True: [seed], "both": [None, seed]}
    if isinstance(obfuscate, bool) or obfuscate == "both":
        return variants[obfuscate]
    raise ValueError(f"obfuscate must be false, true or both, got {obfuscate!r}")


def _eval_config(cfg: DictConfig, env: str, level: int, agent: str, episodes: int | None = None,
                 obfuscation: int | None = None) -> DictConfig:
    # episodes=null (protocol=paper) leaves each run's trial count to the protocol's table for its level.
    episodes = env_setting(cfg, env, "episodes") if episodes is None else episodes
    sub = compose("eval", overrides=[
        f"env={env}", f"level={level}", f"agent={agent}", f"seeds=[{','.join(map(str, cfg.seeds))}]",
        f"protocol={cfg.protocol.name}", *([] if episodes is None else [f"episodes={episodes}"]),
        f"concurrency={cfg.concurrency}", f"max_steps={_null(env_setting(cfg, env, 'max_steps'))}",
        f"progress={cfg.progress}", "logger=none",
        *([] if obfuscation is None else ["obfuscate=true", f"obfuscation_seed={obfuscation}"]),
        *(cfg.agent_overrides if agent != "random" else []),  # the anchor has no language-agent settings
        *cfg.get("agent_overrides_by_agent", {}).get(agent, []),  # settings only one agent has
    ])
    sub.llm = cfg.llm  # the comparison's llm group, with all of the user's llm overrides
    return sub


def _null(value: object) -> str:
    return "null" if value is None else str(value)


@dataclass(frozen=True)
class TimeEstimate:
    """How long a comparison may take at most, told before it starts.

    From streams x steps x a per-decision cost per agent kind: the most each stream can play, every episode to its
    step limit.
    """

    streams: int
    decisions: int
    """Language-agent decisions at most: every stream's episodes played to the step limit."""
    agents_s: float
    """The language agents' part: their decisions' cost summed, as streams share the CPU (4 take ~4x one)."""
    longest_stream_s: float
    ppo_s: float
    fixed_s: float
    """Start-up, the model server, the random anchor, the report and the viewer."""

    @property
    def total_s(self) -> float:
        """The whole job's seconds at most."""
        return self.ppo_s + self.fixed_s + self.agents_s

    def describe(self) -> str:
        """One line for the start of the job: streams, decisions and minutes at most, and the parts."""
        return (f"{self.streams} language-agent streams, at most {self.decisions:,} decisions: estimated at most "
                f"{self.total_s / 60:.1f} min (PPO ~{self.ppo_s:.0f} s; start-up, anchors and report ~"
                f"{self.fixed_s:.0f} s; language agents at most {self.agents_s / 60:.1f} min, the longest stream "
                f"{self.longest_stream_s:.0f} s). Episodes that end before the step limit take less.")


def _episodes(cfg: DictConfig, env: str, level: int) -> int:
    episodes = env_setting(cfg, env, "episodes")
    if episodes is None:  # protocol=paper: the protocol's table gives each level's trials
        episodes = OmegaConf.select(cfg, f"protocol.episodes_per_level.L{level}", default=1)
    return int(episodes)


def estimate_time(cfg: DictConfig) -> TimeEstimate:
    """The most ``cfg`` can take, from ``cfg.estimate``'s costs (the embedded model on 2 cores, a slow day)."""
    costs = cfg.estimate
    variants = len(obfuscation_variants(cfg))  # obfuscate=both: every language-agent stream twice
    decisions, agents_s, longest = 0, 0.0, 0.0
    for env in cfg.envs:
        steps = env_setting(cfg, env, "max_steps") or registered_step_limit(env)
        if steps is None:
            raise ValueError(f"{env} has no step limit: set per_env.{env}.max_steps (or max_steps) to bound it")
        for level in cfg.levels:
            for agent in cfg.agents:
                episodes = _episodes(cfg, env, level)
                decision_s = costs.decision_s.get(agent, costs.decision_s.default)
                episode_s = costs.episode_s.get(agent, costs.episode_s.default)
                # L3 remembers earlier trials through one summary call after each.
                episode_s += costs.memory_s if level_spec(level).self_experience else 0.0
                stream_s = episodes * (steps * decision_s + episode_s)
                decisions += variants * len(cfg.seeds) * episodes * steps
                agents_s += variants * len(cfg.seeds) * stream_s
                longest = max(longest, stream_s)
    return TimeEstimate(streams=variants * len(cfg.seeds) * len(cfg.envs) * len(cfg.levels) * len(cfg.agents),
                        decisions=decisions, agents_s=agents_s, longest_stream_s=longest,
                        ppo_s=costs.ppo_s_per_env * len(cfg.envs), fixed_s=costs.fixed_s)


@dataclass
class CompareOutcome:
    """How a comparison ended: the report, the runs, and what failed as a whole (part, reason)."""

    report_dir: Path
    runs: list[EvalOutcome] = field(default_factory=list)
    failed_parts: list[tuple[str, str]] = field(default_factory=list)
    retries: dict[str, int] = field(default_factory=dict)  # the shared LLM client's, by kind

    @property
    def ok(self) -> bool:
        """Whether every part ran and every run finished its episodes."""
        return not self.failed_parts and all(run.ok for run in self.runs)

    def summary(self) -> str:
        """The closing summary of the whole comparison: episodes done, failures, what did not run."""
        errors = [error for run in self.runs for error in run.failed.values()]
        text = format_summary(sum(run.done for run in self.runs), errors, sum(run.not_run for run in self.runs),
                              self.retries)
        if self.failed_parts:
            text += f"\n{len(self.failed_parts)} parts failed as a whole: " + "; ".join(
                f"{what}: {reason}" for what, reason in self.failed_parts)
        return text


def compare(cfg: DictConfig) -> CompareOutcome:
    """Run the whole comparison under ``cfg.results_dir``; a failing part is recorded and the rest goes on."""
    quiet_libraries()
    validate_compare(cfg)
    root = Path(cfg.results_dir)
    started = time.perf_counter()
    seeds = f"[{','.join(map(str, cfg.seeds))}]"
    outcome = CompareOutcome(root / "report")
    print(f"textgym-compare: {estimate_time(cfg).describe()}", flush=True)

    def failed(what: str, error: Exception) -> None:
        outcome.failed_parts.append((what, error_text(error)))
        logger.error("%s failed: %s (the comparison goes on without it)", what, error_text(error))

    # Sub-runs log nothing to wandb themselves: several run at once in this process. One run covers the job.
    wandb_run = start_wandb(cfg, root, "compare", "compare")

    for env in cfg.envs:  # 1. PPO on each base task, evaluated like the agents
        ppo_cfg = compose("ppo", overrides=[f"env={env}", f"seed={cfg.ppo_seed}", f"eval_seeds={seeds}",
                                            f"eval_episodes={_anchor_episodes(cfg, env)}", "logger=none",
                                            f"progress={cfg.progress}", *cfg.ppo_overrides,
                                            *((cfg.get("per_env") or {}).get(env) or {}).get("ppo_overrides", [])])
        max_steps = env_setting(cfg, env, "max_steps")
        if max_steps is not None:  # PPO trains and plays under the language agents' step limit
            ppo_cfg.env.kwargs = {**ppo_cfg.env.kwargs, "max_episode_steps": max_steps}
        try:
            run_ppo.run(ppo_cfg, root / "ppo" / f"{env}-s{cfg.ppo_seed}")
        except Exception as error:  # noqa: BLE001 - one env's PPO must not cost the comparison
            failed(f"ppo {env}-s{cfg.ppo_seed}", error)
    logger.info("PPO done after %.0fs", time.perf_counter() - started)

    for env in cfg.envs:  # 2. the random anchor (the level changes nothing for it)
        try:
            outcome.runs.append(evaluate(_eval_config(cfg, env, 1, "random", _anchor_episodes(cfg, env)),
                                         root / "eval" / f"{env}-random"))
        except CONFIG_ERRORS as error:
            failed(f"eval {env}-random", error)
    logger.info("random anchors done after %.0fs", time.perf_counter() - started)

    try:
        with llm_session(cfg.llm, max_concurrency=cfg.concurrency) as client:  # 3. the language agents

            progress = RunProgress(enabled=cfg.progress, desc="language agents")

            async def run_all() -> None:
                try:
                    # Every group at once, but only ``concurrency`` streams playing at a time across them all: each
                    # playing stream keeps one server slot and its prompt cache (more streams than slots would make
                    # every request re-read its long prompt), and a stream that ends hands its turn to the next
                    # one of any group, so the slots stay busy until the last few streams instead of idling at
                    # the end of every group. Streams start in config order (conf/compare.yaml lists the longest
                    # first); the groups of one (env, level), which share most of their prompt, play close together.
                    # obfuscate=both: each group's plain and obfuscated variants on the same seeds, side by side.
                    groups = [(env, level, agent, variant) for env in cfg.envs for level in cfg.levels
                              for agent in cfg.agents for variant in obfuscation_variants(cfg)]
                    names = [f"{env}-L{level}-{agent}{variant_suffix(variant is not None, variant)}"
                             for env, level, agent, variant in groups]
                    turns = asyncio.Semaphore(cfg.concurrency)
                    async with progress.watching(client):
                        results = await asyncio.gather(
                            *(evaluate_async(_eval_config(cfg, env, level, agent, obfuscation=variant),
                                             root / "eval" / name, client, progress, stream_gate=turns)
                              for (env, level, agent, variant), name in zip(groups, names, strict=True)),
                            return_exceptions=True)
                    for name, result in zip(names, results, strict=True):
                        if isinstance(result, EvalOutcome):
                            outcome.runs.append(result)
                        elif isinstance(result, Exception):
                            failed(f"eval {name}", result)
                        else:
                            raise result
                finally:
                    await client.aclose()

            try:
                # The cost view's CPU-seconds (experiments/reports/costs.py).
                with cpu_clock(root / "eval", LANGUAGE_AGENTS):
                    run_async(run_all())
            finally:
                progress.close()
                outcome.retries = dict(getattr(client, "retries", None) or {})
    except CONFIG_ERRORS as error:  # e.g. no server at llm.base_url: every language agent is out
        failed("language agents", error)
    logger.info("language agents done after %.0fs", time.perf_counter() - started)

    report_dir = outcome.report_dir  # 4. the report, from the files only
    report = write_report([root / "ppo", root / "eval"], report_dir, failed_parts=outcome.failed_parts)
    elapsed = time.perf_counter() - started
    print(markdown_table(report))
    failures = failures_table(load_episodes([p for p in (root / "ppo", root / "eval") if p.exists()],
                                            include_failed=True), outcome.failed_parts)
    if failures:
        print(f"\nFailures (rerun the same command to retry them):\n{failures}")
    viewer = _write_viewer(root, report_dir, failed, cfg.get("viewer_frames", "all"))
    elapsed = time.perf_counter() - started
    print(f"\nreport: {report_dir / 'report.md'}\nplots: {report_dir / 'scores.png'}, "
          f"{report_dir / 'learning_curves.png'}, {report_dir / CONTAMINATION_PNG}")
    if viewer is not None:
        print(f"viewer: {viewer} (open it in a browser; it needs no server)")
    print(f"wall time: {elapsed / 60:.1f} min")
    if wandb_run is not None:
        import wandb

        wandb_run.log({"report/scores": wandb.Image(str(report_dir / "scores.png")),
                       "report/learning_curves": wandb.Image(str(report_dir / "learning_curves.png"))})
        wandb_run.summary["wall_time_s"] = elapsed
        wandb_run.finish()
    return outcome


def _write_viewer(root: Path, report_dir: Path, failed: Callable[[str, Exception], None],
                  frames: str) -> Path | None:
    """The episode viewer of every run of the comparison, beside the report; a failure here costs nothing else."""
    runs = [p for p in (root / "ppo", root / "eval") if p.exists()]
    if not runs:
        return None
    try:
        return write_viewer(runs, report_dir / "viewer.html", frames=frames)
    except Exception as error:  # noqa: BLE001 - the report is written; the viewer is an extra
        failed("viewer", error)
        return None


def main(argv: list[str] | None = None) -> None:
    """Compose ``conf/compare.yaml`` with command-line overrides (Hydra syntax) and run :func:`compare`.

    Exits 1 if anything failed (after writing the report), 2 for a config error, 130/143 when interrupted.
    """
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    register_resolvers()
    overrides = list(sys.argv[1:] if argv is None else argv)
    verbose = any(o.strip() in ("verbose=true", "verbose=True") for o in overrides)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        try:
            cfg = compose("compare", overrides=overrides)
            verbose = verbose or bool(cfg.verbose)
            logger.info("comparison config:\n%s", OmegaConf.to_yaml(loggable_config(cfg)))
        except (HydraException, *CONFIG_ERRORS) as error:
            exit_on_config_error("textgym-compare", error, verbose)
        try:
            with stop_on_signals():
                outcome = compare(cfg)
        except Interrupted as stop:
            exit_on_interrupt("textgym-compare", stop, cfg.results_dir)
        except CONFIG_ERRORS as error:  # nothing at all to report
            exit_on_config_error("textgym-compare", error, verbose)
    print(outcome.summary())
    if not outcome.ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
