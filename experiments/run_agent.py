"""textgym-eval: run a language agent on a text env at one knowledge level, resumably.

    textgym-eval env=cartpole level=3 agent=exe llm=local seeds=[0,1,2] episodes=5 concurrency=8
    textgym-eval ... seeds=[0,...,499] shard=2/8     # only seeds[1::8]; the 8 shards share one run dir

For each seed, one agent instance plays ``episodes`` consecutive episodes (a *stream*; it keeps what it
learned); up to ``concurrency`` streams run at once against one LLM client (``experiments/running/streams.py``), or
spread over ``workers`` processes (``experiments/running/workers.py``). Results go to the run dir: ``episodes.jsonl``,
``steps.jsonl``, ``calls.jsonl``, ``agent_state/`` and ``.hydra/`` (see experiments/records/results.py).

Failures stay inside their stream: an episode whose LLM calls fail for good or whose agent raises is written as
a ``status: "failed"`` row, and that stream stops there (the rerun retries exactly the failed and missing
episodes). At the end the command prints ``N episodes done, M failed: <reasons>`` and exits 1 if any episode is
not done. Config errors, interruptions and their exit codes: ``experiments/cli.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import textgym
from agents.base import prompt_templates_fingerprint
from agents.llm.client import LLMClient
from agents.llm.protocol import ChatModel
from experiments.cli import hydra_command, run_async, run_job, stop_on_signals
from experiments.config import (
    agent_class,
    quiet_libraries,
    register_resolvers,
    save_run_config,
    start_wandb,
    validate_eval,
)
from experiments.records.results import EpisodeKey, ResultsWriter, Shard
from experiments.running.gc_tuning import streaming_gc
from experiments.running.llm_session import llm_session
from experiments.running.progress import RunProgress
from experiments.running.streams import StreamSetup, play_streams
from experiments.running.workers import play_in_workers, prepare_workers, worker_count
from experiments.variants import fold_obfuscation

__all__ = ["evaluate", "evaluate_async", "needs_llm", "run_identity", "main", "EvalOutcome", "format_summary"]

logger = logging.getLogger(__name__)
register_resolvers()

# The llm settings that change answers; timeouts, retries, concurrency and the cache do not.
LLM_IDENTITY_KEYS = ("provider", "model", "model_path", "temperature", "max_tokens", "seed", "structured_output")


@dataclass
class EvalOutcome:
    """How a run (or one shard of it) ended.

    Attributes:
        run_dir: where its files are.
        episodes_path: the episodes file it appended to.
        wanted: episodes it was asked for (its seeds x ``episodes``).
        done: of those, how many are finished (in this run or before).
        failed: episodes that failed in this run, with their error.
        retries: the LLM client's retries by kind, when it counts them.
    """

    run_dir: Path
    episodes_path: Path
    wanted: int
    done: int
    failed: dict[EpisodeKey, str] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def not_run(self) -> int:
        """Episodes neither done nor failed: the later episodes of streams that failed."""
        return self.wanted - self.done - len(self.failed)

    @property
    def ok(self) -> bool:
        """Whether every episode asked for is done."""
        return self.done == self.wanted

    def summary(self) -> str:
        """The command's closing lines (see :func:`format_summary`)."""
        return format_summary(self.done, self.failed.values(), self.not_run, self.retries)


def format_summary(done: int, errors: Iterable[str], not_run: int = 0, retries: dict[str, int] | None = None,
                   most: int = 5) -> str:
    """``N episodes done, M failed: <reason> (xK); ...``, the retries by kind, and how to retry."""
    reasons = Counter(errors)
    failed = sum(reasons.values())
    text = f"{done} episodes done, {failed} failed"
    if reasons:
        shown = [f"{reason} (x{count})" for reason, count in reasons.most_common(most)]
        if len(reasons) > most:
            shown.append(f"and {len(reasons) - most} other reasons")
        text += ": " + "; ".join(shown)
    if not_run:
        text += f"\n{not_run} episodes not run: they follow a failed episode in its stream"
    if retries:
        text += "\nLLM retries: " + ", ".join(f"{kind} x{count}" for kind, count in sorted(retries.items()))
    if failed or not_run:
        text += "\nrun the same command again to retry the failed and missing episodes"
    return text


def needs_llm(cfg: DictConfig) -> bool:
    """Whether the configured agent talks to an LLM (random and human do not)."""
    return bool(getattr(agent_class(cfg.agent._target_), "uses_llm", True))


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings that change an eval run's results: resuming under other ones is refused.

    Seeds and the shard are not part of it: seeds may grow, and every shard writes into the same run dir.
    """
    llm = None
    if needs_llm(cfg):
        llm = {k: cfg.llm.get(k) for k in LLM_IDENTITY_KEYS}
        if cfg.llm.provider != "embedded":  # the embedded server's address is new every start
            llm["base_url"] = cfg.llm.get("base_url")  # a custom backend (llm=custom) may have none
        else:  # the weights it serves: the shipped file or its Q8_0 copy
            llm["requantize"] = cfg.llm.get("requantize")
    identity = {"env": cfg.env.name, "env_kwargs": OmegaConf.to_container(cfg.env.kwargs, resolve=True),
                "level": cfg.level, "agent": OmegaConf.to_container(cfg.agent, resolve=True), "llm": llm,
                "max_steps": cfg.max_steps, "episodes": cfg.episodes}
    if llm is not None:  # the library's prompts are part of the protocol (a user's own templates are not seen)
        identity["prompt_templates"] = prompt_templates_fingerprint()
    # The reset-seed rule changes which episodes are played (and textgym-replay reads it from here). Recorded only
    # when it differs from the default, so run dirs of the default protocol keep their identity.
    if cfg.get("protocol") and cfg.protocol.get("same_reset_seed"):
        identity["same_reset_seed"] = True
    return identity


def planned_workers(cfg: DictConfig, streams: int) -> int:
    """Worker processes for ``streams`` streams under ``cfg`` (``workers``, and at most ``concurrency`` at once)."""
    return worker_count(cfg.get("workers") or 1, min(streams, int(cfg.concurrency)))


async def _play(setup: StreamSetup, writer: ResultsWriter, client: ChatModel | None, seeds: list[int], todo: int,
                progress: RunProgress | None, stream_gate: asyncio.Semaphore | None,
                wandb_run: Any) -> dict[EpisodeKey, str]:
    """Play the ``todo`` unfinished episodes of ``seeds``, in this event loop or in worker processes."""
    cfg = setup.cfg
    setup.check_buildable(client, seeds[0])
    own_progress = progress is None
    progress = progress or RunProgress(enabled=cfg.progress)
    progress.add_group(setup.group, todo)
    try:
        workers = planned_workers(cfg, len(seeds))
        # Workers copy an LLMClient into each process; another backend plays in this one.
        if workers > 1 and len(seeds) > 1 and (client is None or isinstance(client, LLMClient)):
            return await play_in_workers(cfg, writer, client, seeds, setup.keys(seeds), progress, setup.group,
                                         workers, wandb_run)
        gate = stream_gate or asyncio.Semaphore(cfg.concurrency)
        # A shared display is watched by its owner (textgym-compare); this run's own shows this client.
        watching = progress.watching(client) if own_progress else contextlib.nullcontext()
        with streaming_gc():
            async with watching:
                return await play_streams(setup, writer, client, seeds, progress, gate, wandb_run)
    finally:
        if own_progress:
            progress.close()


async def evaluate_async(cfg: DictConfig, run_dir: str | Path, client: ChatModel | None,
                         progress: RunProgress | None = None,
                         stream_gate: asyncio.Semaphore | None = None) -> EvalOutcome:
    """Run (or resume) ``cfg`` into ``run_dir`` with a client the caller owns (shared by several configs).

    ``progress``: a display shared with other runs of the same command (default: this run's own).
    ``stream_gate``: a limit on streams at once shared with those runs (default: ``cfg.concurrency`` of its own).
    """
    validate_eval(cfg)
    fold_obfuscation(cfg)  # obfuscate=true: the obfuscated variant's env kwargs (experiments/variants.py)
    textgym.env_entry(cfg.env.name)  # unknown env -> clear error before anything starts
    shard = Shard.parse(cfg.get("shard"))
    writer = ResultsWriter(run_dir, identity=run_identity(cfg), shard=shard)
    save_run_config(cfg, writer.run_dir)  # what Hydra writes for textgym-eval, for runs started from code
    seeds = shard.select(list(cfg.seeds)) if shard else list(cfg.seeds)
    if planned_workers(cfg, len(seeds)) > 1:
        prepare_workers()  # the fork server imports while this process sets up
    setup = StreamSetup(cfg, model=client.model if client else None)
    if shard is not None and not seeds:
        logger.warning("shard %s has no seeds: there are only %d (nothing to do)", shard, len(cfg.seeds))
    elif shard is not None:
        logger.info("shard %s: seeds %s -> %s", shard, seeds, writer.episodes_path.name)
    started = time.perf_counter()
    keys = setup.keys(seeds)
    failures: dict[EpisodeKey, str] = {}
    wandb_name = setup.group.replace(" ", "-") + (f"-shard{shard.index}of{shard.count}" if shard else "")
    wandb_run = start_wandb(cfg, writer.run_dir, wandb_name, "eval")
    try:
        todo = sum(not writer.is_done(key) for key in keys)
        if todo:
            failures = await _play(setup, writer, client, seeds, todo, progress, stream_gate, wandb_run)
    finally:
        if wandb_run is not None:
            wandb_run.finish()
    retries = getattr(client, "retries", None) if client else None
    outcome = EvalOutcome(writer.run_dir, writer.episodes_path, wanted=len(keys),
                          done=sum(writer.is_done(k) for k in keys), failed=failures, retries=dict(retries or {}))
    logger.info("%s: %d of %d episodes done in %.1fs -> %s", writer.run_dir, outcome.done, outcome.wanted,
                time.perf_counter() - started, writer.episodes_path)
    return outcome


def evaluate(cfg: DictConfig, run_dir: str | Path) -> EvalOutcome:
    """Run (or resume) the evaluation described by ``cfg`` into ``run_dir``.

    Raises:
        Interrupted: SIGINT or SIGTERM stopped it (finished episodes are saved; rerun to resume).
        ValueError: a bad setting (and the other ``experiments.cli.CONFIG_ERRORS``), before any episode runs.
    """
    validate_eval(cfg)
    quiet_libraries()
    if planned_workers(cfg, len(cfg.seeds)) > 1:
        prepare_workers()  # its imports overlap the LLM session's start
    with stop_on_signals():
        if not needs_llm(cfg):
            return run_async(evaluate_async(cfg, run_dir, None))
        with llm_session(cfg.llm, max_concurrency=cfg.concurrency) as client:

            async def run_then_close() -> EvalOutcome:
                try:
                    return await evaluate_async(cfg, run_dir, client)
                finally:
                    await client.aclose()

            return run_async(run_then_close())


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    run_job("textgym-eval", cfg, lambda: evaluate(cfg, run_dir), run_dir)


def main() -> None:
    """Console entry point: ``textgym-eval [key=value ...]`` (``--help`` explains the keys)."""
    hydra_command("textgym-eval", _hydra_main, "eval")


if __name__ == "__main__":
    main()
