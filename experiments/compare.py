"""textgym-compare: the main job. PPO, the random anchor and language agents on the same tasks, then the report.

    textgym-compare                                   # conf/compare.yaml: CartPole + FrozenLake, L1/L5, naive/exe
    textgym-compare envs=[blackjack] levels=[1,2,3,4,5] agents=[cot,reflexion] llm=openai

Steps: (1) ``textgym-ppo`` per env (trained on the base task, evaluated on the agents' seeds); (2) the random
agent per env; (3) every env x level x agent through ``textgym-eval``'s code, all in one event loop against one
LLM client so the model server stays busy; (4) ``textgym-report`` over everything. Each step resumes from the
result files, so rerunning the command after an interruption finishes the job without redoing work.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from experiments import run_ppo
from experiments.config import loggable_config, quiet_libraries, register_resolvers, start_wandb
from experiments.llm_session import llm_session
from experiments.report import markdown_table, write_report
from experiments.run_agent import evaluate, evaluate_async

__all__ = ["compare", "main"]

logger = logging.getLogger(__name__)
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def _eval_config(cfg: DictConfig, env: str, level: int, agent: str) -> DictConfig:
    sub = compose("eval", overrides=[
        f"env={env}", f"level={level}", f"agent={agent}", f"seeds=[{','.join(map(str, cfg.seeds))}]",
        f"episodes={cfg.episodes}", f"concurrency={cfg.concurrency}", f"max_steps={_null(cfg.max_steps)}",
        f"progress={cfg.progress}", "logger=none",
        *(cfg.agent_overrides if agent != "random" else []),  # the anchor has no language-agent settings
    ])
    sub.llm = cfg.llm  # the comparison's llm group, with all of the user's llm overrides
    return sub


def _null(value: object) -> str:
    return "null" if value is None else str(value)


def compare(cfg: DictConfig) -> Path:
    """Run the whole comparison under ``cfg.results_dir``; returns the report dir."""
    quiet_libraries()
    root = Path(cfg.results_dir)
    started = time.perf_counter()
    seeds = f"[{','.join(map(str, cfg.seeds))}]"
    # Sub-runs log nothing to wandb themselves: several run at once in this process. One run covers the job.
    wandb_run = start_wandb(cfg, root, "compare", "compare")

    for env in cfg.envs:  # 1. PPO on each base task, evaluated like the agents
        ppo_cfg = compose("ppo", overrides=[f"env={env}", f"seed={cfg.ppo_seed}", f"eval_seeds={seeds}",
                                            f"eval_episodes={cfg.episodes}", "logger=none",
                                            f"progress={cfg.progress}", *cfg.ppo_overrides])
        if cfg.max_steps is not None:
            ppo_cfg.env.kwargs = {**ppo_cfg.env.kwargs, "max_episode_steps": cfg.max_steps}
        run_ppo.run(ppo_cfg, root / "ppo" / f"{env}-s{cfg.ppo_seed}")
    logger.info("PPO done after %.0fs", time.perf_counter() - started)

    for env in cfg.envs:  # 2. the random anchor (the level changes nothing for it)
        evaluate(_eval_config(cfg, env, 1, "random"), root / "eval" / f"{env}-random")

    with llm_session(cfg.llm, max_concurrency=cfg.concurrency) as client:  # 3. the language agents

        async def run_all() -> None:
            try:
                # One (env, level) at a time, all its agents and seeds at once: they share the system prompt,
                # so the server's per-slot prompt cache keeps hitting instead of re-reading long prompts.
                for env in cfg.envs:
                    for level in cfg.levels:
                        await asyncio.gather(*(evaluate_async(_eval_config(cfg, env, level, agent),
                                                              root / "eval" / f"{env}-L{level}-{agent}", client)
                                               for agent in cfg.agents))
            finally:
                await client.aclose()

        asyncio.run(run_all())
    logger.info("language agents done after %.0fs", time.perf_counter() - started)

    report_dir = root / "report"  # 4. the report, from the files only
    report = write_report([root / "ppo", root / "eval"], report_dir)
    elapsed = time.perf_counter() - started
    print(markdown_table(report))
    print(f"\nreport: {report_dir / 'report.md'}\nplots: {report_dir / 'scores.png'}, "
          f"{report_dir / 'learning_curves.png'}\nwall time: {elapsed / 60:.1f} min")
    if wandb_run is not None:
        import wandb

        wandb_run.log({"report/scores": wandb.Image(str(report_dir / "scores.png")),
                       "report/learning_curves": wandb.Image(str(report_dir / "learning_curves.png"))})
        wandb_run.summary["wall_time_s"] = elapsed
        wandb_run.finish()
    return report_dir


def main(argv: list[str] | None = None) -> None:
    """Compose ``conf/compare.yaml`` with command-line overrides (Hydra syntax) and run :func:`compare`."""
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("compare", overrides=list(sys.argv[1:] if argv is None else argv))
        logger.info("comparison config:\n%s", OmegaConf.to_yaml(loggable_config(cfg)))
        compare(cfg)


if __name__ == "__main__":
    main()
