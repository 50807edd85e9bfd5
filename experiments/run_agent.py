"""textgym-eval: run a language agent on a text env at one knowledge level, resumably.

    textgym-eval env=cartpole level=3 agent=exe llm=local seeds=[0,1,2] episodes=5 concurrency=8
    textgym-eval ... seeds=[0,...,499] shard=2/8     # only seeds[1::8]; the 8 shards share one run dir

For each seed, one agent instance plays ``episodes`` consecutive episodes (a *stream*; it keeps what it
learned); up to ``concurrency`` streams run at once against one LLM client. Results go to the run dir:
``episodes.jsonl``, ``steps.jsonl``, ``agent_state/`` and ``.hydra/`` (see experiments/results.py).

Failures stay inside their stream. An episode whose LLM calls fail for good (an ``LLMError`` after the
client's retries, a rejected request) or whose agent raises is written as a ``status: "failed"`` row with
its error, and that stream stops there: its later episodes would start from what the failed one should
have taught, so they are left for the rerun (which retries exactly the failed and missing episodes).
Every other stream goes on. At the end the command prints ``N episodes done, M failed: <reasons>`` and
exits 1 if any episode is not done. Config and value errors print one line and exit 2 (the traceback with
``verbose=true`` or ``HYDRA_FULL_ERROR=1``). SIGINT/SIGTERM abandon the episodes in flight (finished ones
are on disk), say how to resume and exit 130/143.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, HydraException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import textgym
from agents.base import Agent, prompt_templates_fingerprint
from agents.llm.client import LLMClient, LLMError, Usage
from experiments.config import (
    ConfigComposed,
    agent_class,
    agent_name,
    quiet_libraries,
    register_resolvers,
    start_wandb,
    validate_eval,
)
from experiments.episodes import EpisodeRecord, run_episode
from experiments.llm_session import llm_session
from experiments.progress import RunProgress
from experiments.results import (
    FAILED,
    EpisodeKey,
    ResultsWriter,
    Shard,
    episode_row,
    error_text,
)

__all__ = ["evaluate", "evaluate_async", "needs_llm", "main", "EvalOutcome", "Interrupted", "run_async",
           "stop_on_signals", "format_summary", "CONFIG_ERRORS"]

logger = logging.getLogger(__name__)
register_resolvers()
T = TypeVar("T")

# What a run can fail with before any episode starts: bad values, a config Hydra composed but we refuse,
# a run dir made with other settings, an unreachable or unusable server (the client's preflight). Episodes
# never raise these out of the run: their failures are recorded.
CONFIG_ERRORS = (ValueError, OmegaConfBaseException, HydraException, FileNotFoundError, LLMError)


class ConfigError(ValueError):
    """The env or agent cannot be built with the given settings."""


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped the run; finished episodes are on disk."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for death by a signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn Ctrl-C and SIGTERM into :class:`Interrupted` for the block (SIGTERM would kill it silently)."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (a launcher's worker thread): signals are not ours to take
        previous = None
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(signal.SIGINT) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# Collector settings while streams play: young generation collected every 20,000 allocations (not 700) and a
# full collection only after 100 (not 10) middle ones. See streaming_gc().
STREAMING_GC_THRESHOLDS = (20_000, 10, 100)
_streaming_gc_blocks: list[tuple[int, int, int]] = []  # the thresholds before the first open block, per block


@contextlib.contextmanager
def streaming_gc() -> Iterator[None]:
    """Fewer and shorter garbage-collector pauses for the block (the streams of a run).

    A full collection stops every stream at once: at 64 streams its pauses of 100-140 ms, three per 12,800
    decisions, cost more throughput than all of our JSON. So what exists when the streams start (modules,
    configs, templates: 130k objects) is frozen out of the collector's scans (``gc.freeze``), and the
    thresholds are raised; a decision's own garbage is freed by reference counting anyway. Both are undone when
    the last open block ends (blocks may overlap: runs played side by side in one event loop).
    """
    if not _streaming_gc_blocks:
        gc.freeze()
        _streaming_gc_blocks.append(gc.get_threshold())
        gc.set_threshold(*STREAMING_GC_THRESHOLDS)
    else:
        _streaming_gc_blocks.append(_streaming_gc_blocks[0])
    try:
        yield
    finally:
        previous = _streaming_gc_blocks.pop()
        if not _streaming_gc_blocks:
            gc.set_threshold(*previous)
            gc.unfreeze()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, where SIGTERM cancels the run like Ctrl-C does, between two steps of any stream.

    Raises:
        Interrupted: SIGTERM arrived (Ctrl-C surfaces as ``KeyboardInterrupt``, see :func:`stop_on_signals`).
    """

    async def guarded() -> T:
        task, loop, received = asyncio.current_task(), asyncio.get_running_loop(), []
        assert task is not None

        def cancel() -> None:
            received.append(signal.SIGTERM)
            task.cancel()

        try:
            loop.add_signal_handler(signal.SIGTERM, cancel)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread
            received = None  # type: ignore[assignment]
        try:
            return await coro
        except asyncio.CancelledError:
            if received:
                raise Interrupted(signal.SIGTERM) from None
            raise
        finally:
            if received is not None:
                loop.remove_signal_handler(signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    try:
        return asyncio.run(guarded())
    finally:
        with contextlib.suppress(ValueError, TypeError):  # restore what remove_signal_handler reset to default
            signal.signal(signal.SIGTERM, previous)


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
        return self.done == self.wanted

    def summary(self) -> str:
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


def _usage_fields(usage: Usage) -> dict[str, Any]:
    return {"llm_calls": usage.calls, "cached_calls": usage.cached_calls, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_prompt_tokens": getattr(usage, "cached_prompt_tokens", 0),
            "cost_usd": round(usage.cost_usd, 6), "llm_latency_s": round(usage.latency_s, 3)}


def agent_episode_row(cfg: DictConfig, env_id: str, name: str, model: str | None, record: EpisodeRecord,
                      notes: dict[str, Any] | None = None) -> dict[str, Any]:
    return episode_row(
        record.episode_return, kind="agent", env=cfg.env.name, env_id=env_id, level=cfg.level, agent=name,
        llm_model=model, seed=record.seed, episode=record.episode_index, steps=record.steps,
        terminated=record.terminated, invalid_actions=record.invalid_actions, invalid_replies=record.invalid_replies,
        wall_time_s=round(record.wall_time_s, 3), notes=notes or {}, **_usage_fields(record.usage),
    )


class _Attempt:
    """What an episode got through before it failed: steps, invalid actions, LLM usage, time."""

    def __init__(self, agent: Agent | None) -> None:
        self.agent = agent
        self.usage_before = agent.usage if agent else Usage()
        self.invalid_replies_before = agent.invalid_replies if agent else 0
        self.started = time.perf_counter()
        self.steps = self.invalid_actions = 0

    def on_step(self, record: dict[str, Any]) -> None:
        self.steps += 1
        self.invalid_actions += int(record["invalid_action"])

    def failed_row(self, cfg: DictConfig, env_id: str, key: EpisodeKey, error: BaseException) -> dict[str, Any]:
        usage = self.agent.usage - self.usage_before if self.agent else Usage()
        invalid_replies = self.agent.invalid_replies - self.invalid_replies_before if self.agent else 0
        return episode_row(
            None, kind="agent", env=key.env, env_id=env_id, level=key.level, agent=key.agent, llm_model=key.llm_model,
            seed=key.seed, episode=key.episode, status=FAILED, error=error_text(error), steps=self.steps,
            terminated=False, invalid_actions=self.invalid_actions, invalid_replies=invalid_replies,
            wall_time_s=round(time.perf_counter() - self.started, 3), **_usage_fields(usage),
        )


def log_episode(wandb_run: Any, row: dict[str, Any], step: int) -> None:
    """One finished episode's metrics to wandb."""
    wandb_run.log({"episode/return": row["return"], "episode/steps": row["steps"],
                   "episode/invalid_actions": row["invalid_actions"], "episode/seed": row["seed"],
                   "episode/index": row["episode"], "llm/prompt_tokens": row["prompt_tokens"],
                   "llm/completion_tokens": row["completion_tokens"], "llm/cost_usd": row["cost_usd"]}, step=step)


async def _run_streams(cfg: DictConfig, writer: ResultsWriter, client: LLMClient | None, wandb_run: Any,
                       seeds: list[int], progress: RunProgress | None = None,
                       stream_gate: asyncio.Semaphore | None = None) -> dict[EpisodeKey, str]:
    """Play every unfinished episode of ``seeds``' streams; returns the episodes that failed, with their error.

    ``progress`` is the command's one display (``textgym-compare`` shares one across groups); without one this
    run shows its own. ``stream_gate`` bounds the streams playing at once (default: ``cfg.concurrency`` of this
    run's own); runs sharing one gate take turns stream by stream.
    """
    entry = textgym.env_entry(cfg.env.name)
    name = agent_name(cfg.agent._target_, cfg.agent.get("name"))
    make_agent = instantiate(cfg.agent)
    same_reset_seed = bool(OmegaConf.select(cfg, "protocol.same_reset_seed", default=False))  # protocol=paper
    model = client.model if client else None
    env_kwargs = {"level": cfg.level, **cfg.env.kwargs}
    if cfg.max_steps is not None:
        env_kwargs["max_episode_steps"] = cfg.max_steps

    def key(seed: int, episode: int) -> EpisodeKey:
        return EpisodeKey(cfg.env.name, cfg.level, name, seed, episode, llm_model=model)

    todo = sum(not writer.is_done(key(s, k)) for s in seeds for k in range(cfg.episodes))
    if not todo:
        return {}
    try:  # settings that cannot build an env or an agent are the user's to fix, not 8 episode failures
        gym.make(entry.text_id, **env_kwargs).close()
        make_agent(llm=client, seed=seeds[0])
    except Exception as error:
        raise ConfigError(f"cannot build env={cfg.env.name} / agent={name} with these settings: "
                          f"{error_text(error)}") from error
    own_progress = progress is None
    if progress is None:
        progress = RunProgress(enabled=cfg.progress)
    group = f"{cfg.env.name} L{cfg.level} {name}"
    progress.add_group(group, todo)
    workers = int(cfg.get("workers") or 1)
    if workers > 1 and len(seeds) > 1:
        from experiments.workers import play_in_workers  # only when asked: it starts processes

        try:
            return await play_in_workers(cfg, writer, client, seeds, [key(s, k) for s in seeds
                                                                      for k in range(cfg.episodes)],
                                         progress, group, workers, wandb_run)
        finally:
            if own_progress:
                progress.close()
    gate = stream_gate or asyncio.Semaphore(cfg.concurrency)
    failures: dict[EpisodeKey, str] = {}
    logged = 0

    async def play_stream(seed: int, keys: list[EpisodeKey], agent: Agent, env: gym.Env) -> None:
        nonlocal logged
        played_previous = False  # whether the agent object already holds what the previous episode taught
        for episode_key in keys:
            if writer.is_done(episode_key):
                played_previous = False
                continue
            attempt = _Attempt(agent)
            try:
                if episode_key.episode > 0 and not played_previous:
                    # Continue a stream interrupted after its previous episode, from what it had learned.
                    state = writer.load_state(keys[episode_key.episode - 1])
                    if state is not None:
                        agent.load_state(state)
                    elif agent.state_attributes:
                        logger.warning("no saved state for %s before episode %d: the agent starts fresh",
                                       episode_key.stream, episode_key.episode)
                record = await run_episode(env, agent, seed, episode_key.episode, cfg.episodes,
                                           on_step=attempt.on_step, same_reset_seed=same_reset_seed)
                row = agent_episode_row(cfg, entry.text_id, name, model, record, agent.episode_notes())
            except Exception as error:  # noqa: BLE001 - whatever the client or agent raised ends this stream only
                failure = attempt.failed_row(cfg, entry.text_id, episode_key, error)
                writer.write_failure(failure)
                failures[episode_key] = failure["error"]
                progress.episode_finished(group, failed=True)
                later = len(keys) - episode_key.episode - 1
                logger.warning("seed %d episode %d failed: %s%s", seed, episode_key.episode, failure["error"],
                               f" ({later} later episodes of this stream not run)" if later else "")
                return
            writer.write_episode(row, record.step_records, agent.state(), calls=record.calls)
            played_previous = True
            progress.episode_finished(group)
            if wandb_run is not None:
                logged += 1
                log_episode(wandb_run, row, logged)

    async def stream(seed: int) -> None:
        keys = [key(seed, k) for k in range(cfg.episodes)]
        if all(writer.is_done(k) for k in keys):
            return
        async with gate:
            env: gym.Env | None = None
            try:
                env = gym.make(entry.text_id, **env_kwargs)
                agent: Agent = make_agent(llm=client, seed=seed)
            except Exception as error:  # noqa: BLE001 - recorded as the stream's first unfinished episode
                first = next(k for k in keys if not writer.is_done(k))
                failure = _Attempt(None).failed_row(cfg, entry.text_id, first, error)
                writer.write_failure(failure)
                failures[first] = failure["error"]
                logger.warning("seed %d could not start: %s", seed, failure["error"])
                if env is not None:
                    env.close()
                return
            try:
                await play_stream(seed, keys, agent, env)
            finally:
                env.close()

    try:
        # return_exceptions: a stream that breaks in a way it could not record (a full disk) must not cancel
        # the others; it is raised once they are all over.
        with streaming_gc():
            if own_progress:
                async with progress.watching(client):
                    results = await asyncio.gather(*(stream(seed) for seed in seeds), return_exceptions=True)
            else:
                results = await asyncio.gather(*(stream(seed) for seed in seeds), return_exceptions=True)
    finally:
        if own_progress:
            progress.close()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return failures


# The llm settings that change answers; timeouts, retries, concurrency and the cache do not.
LLM_IDENTITY_KEYS = ("provider", "model", "model_path", "temperature", "max_tokens", "seed", "structured_output")


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


async def evaluate_async(cfg: DictConfig, run_dir: str | Path, client: LLMClient | None,
                         progress: RunProgress | None = None,
                         stream_gate: asyncio.Semaphore | None = None) -> EvalOutcome:
    """Run (or resume) ``cfg`` into ``run_dir`` with a client the caller owns (shared by several configs).

    ``progress``: a display shared with other runs of the same command (default: this run's own).
    ``stream_gate``: a limit on streams at once shared with those runs (default: ``cfg.concurrency`` of its own).
    """
    validate_eval(cfg)
    textgym.env_entry(cfg.env.name)  # unknown env -> clear error before anything starts
    shard = Shard.parse(cfg.get("shard"))
    writer = ResultsWriter(run_dir, identity=run_identity(cfg), shard=shard)
    seeds = shard.select(list(cfg.seeds)) if shard else list(cfg.seeds)
    name = agent_name(cfg.agent._target_, cfg.agent.get("name"))
    if shard is not None and not seeds:
        logger.warning("shard %s has no seeds: there are only %d (nothing to do)", shard, len(cfg.seeds))
    elif shard is not None:
        logger.info("shard %s: seeds %s -> %s", shard, seeds, writer.episodes_path.name)
    started = time.perf_counter()
    wandb_name = f"{cfg.env.name}-L{cfg.level}-{name}" + (f"-shard{shard.index}of{shard.count}" if shard else "")
    wandb_run = start_wandb(cfg, writer.run_dir, wandb_name, "eval")
    try:
        failures = await _run_streams(cfg, writer, client, wandb_run, seeds, progress, stream_gate)
    finally:
        if wandb_run is not None:
            wandb_run.finish()
    model = client.model if client else None
    keys = [EpisodeKey(cfg.env.name, cfg.level, name, seed, k, llm_model=model)
            for seed in seeds for k in range(cfg.episodes)]
    retries = getattr(client, "retries", None) if client else None
    outcome = EvalOutcome(writer.run_dir, writer.episodes_path, wanted=len(keys),
                          done=sum(writer.is_done(k) for k in keys), failed=failures, retries=dict(retries or {}))
    logger.info("%s: %d of %d episodes done in %.1fs -> %s", writer.run_dir, outcome.done, outcome.wanted,
                time.perf_counter() - started, writer.episodes_path)
    return outcome


def needs_llm(cfg: DictConfig) -> bool:
    return bool(getattr(agent_class(cfg.agent._target_), "uses_llm", True))


def evaluate(cfg: DictConfig, run_dir: str | Path) -> EvalOutcome:
    """Run (or resume) the evaluation described by ``cfg`` into ``run_dir``.

    Raises:
        Interrupted: SIGINT or SIGTERM stopped it (finished episodes are saved; rerun to resume).
        ValueError: a bad setting (and the other :data:`CONFIG_ERRORS`), before any episode runs.
    """
    validate_eval(cfg)
    quiet_libraries()
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


# ---- the command line ----------------------------------------------------------------------------------

class JobFailed(CompactHydraException):
    """A sweep job's one-line reason; Hydra runs the other jobs, then exits 1 printing only this line."""


def _verbose(cfg: DictConfig | None = None) -> bool:
    return bool(os.environ.get("HYDRA_FULL_ERROR") == "1" or (cfg is not None and cfg.get("verbose")))


def config_error_line(error: BaseException) -> str:
    """A config error as one line: the message's first line (OmegaConf appends the key's details below it)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def exit_on_config_error(command: str, error: BaseException, verbose: bool) -> None:
    """Print ``<command>: error: <one line>`` (the traceback first when ``verbose`` or HYDRA_FULL_ERROR=1), exit 2."""
    if verbose or _verbose():
        traceback.print_exception(error)
    print(f"{command}: error: {config_error_line(error)}", file=sys.stderr)
    sys.exit(2)


def exit_on_interrupt(command: str, stop: Interrupted, run_dir: str | Path) -> None:
    print(f"{command}: interrupted by {signal.Signals(stop.signum).name}: the episodes in flight were abandoned, "
          f"every finished one is saved in {run_dir}; run the same command again to resume", file=sys.stderr)
    sys.exit(stop.exit_code)


def run_job(command: str, cfg: DictConfig, job: Callable[[], EvalOutcome], run_dir: str | Path) -> None:
    """Run a CLI job and turn its end into the exit status (see the module docstring).

    In a Hydra sweep a job must not exit the process (the basic launcher runs the other jobs in it): it
    raises :class:`JobFailed` instead, and Hydra exits 1 after every job has run.
    """
    in_sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        outcome = job()
    except Interrupted as stop:
        exit_on_interrupt(command, stop, run_dir)
    except CONFIG_ERRORS as error:
        if in_sweep:
            if _verbose(cfg):
                raise
            raise JobFailed(f"{run_dir}: {config_error_line(error)}") from error
        exit_on_config_error(command, error, _verbose(cfg))
    print(outcome.summary())
    if not outcome.ok:
        if in_sweep:
            raise JobFailed(f"{run_dir}: {outcome.summary().splitlines()[0]}")
        sys.exit(1)


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    run_job("textgym-eval", cfg, lambda: evaluate(cfg, run_dir), run_dir)


def exit_2_if_not_composed(hydra_main: Callable[[], None], composed: Callable[[], bool]) -> None:
    """Run a ``@hydra.main`` function; Hydra's own exit for a config it could not compose becomes status 2."""
    try:
        hydra_main()
    except SystemExit as stop:
        if stop.code == 1 and not composed():
            sys.exit(2)  # Hydra already printed what it could not compose (unknown env/agent/key, bad syntax)
        raise
    except Exception:  # HYDRA_FULL_ERROR=1: Hydra re-raised instead of printing
        if composed():
            raise
        traceback.print_exc()
        sys.exit(2)


@functools.wraps(_hydra_main)
def main() -> None:
    exit_2_if_not_composed(_hydra_main, lambda: ConfigComposed.composed)  # set by conf/eval.yaml's callback


if __name__ == "__main__":
    main()
