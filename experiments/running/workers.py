"""Streams in worker processes: one event loop per process, the parent the one writer of the run dir.

``textgym-eval workers=N`` (N > 1) spreads a run's streams over N processes. One event loop on one core tops
out at some hundreds of decisions a second (our own CPU per decision, ``benchmarks/throughput.py``); a fast
server with hundreds of streams can take more. Each worker plays its seeds exactly as a one-process run does
(``streams.play_streams``: same episodes, same reset seeds, same agent states), with its share of the LLM
concurrency, and sends every finished or failed episode to the parent, which writes it through the run's one
:class:`~experiments.records.results.ResultsWriter`. So the files, the resume rules and the rows are those of a
one-process run: a rerun finds what the parent wrote, whatever happened to the workers.

Workers fork from a ``forkserver`` that imported this module (so TextGym, the agents and the runner) once: a
worker starts in milliseconds instead of importing it all again, and never copies the parent's threads or event
loop. :func:`prepare_workers` starts that server early, so its imports overlap the parent's own start-up (the
LLM session, the run dir). Where the OS has no fork server, workers are ``spawn``-ed. A worker takes the parent's
working directory, environment and import path as they are when it starts, as a spawned one would, not the
server's. Workers ignore SIGINT: the parent decides. When the parent is interrupted it stops them, writes what
they had sent, and the unfinished episodes are left for the rerun, as in one process.

``workers=auto`` (textgym-eval's default) picks the count with :func:`auto_workers`: one process below
:data:`AUTO_MIN_STREAMS` streams in flight or on two cores or fewer (there, extra processes cost start-up and the
parent's relaying and gain nothing: 64 streams of a 50 ms server kept one event loop at 0.97 of the server's
ceiling on 16 cores, and 2-8 workers at 0.68-0.82), else one per :data:`AUTO_STREAMS_PER_WORKER` streams, at most
one per core but the parent's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import queue as queue_module
import signal
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from agents.llm.client import LLMClient, Usage
from experiments.config import check_workers
from experiments.records.results import EpisodeKey, FinishedEpisode, ResultsWriter, load_state
from experiments.records.transcripts import EpisodeCalls, WrittenCalls
from experiments.running.gc_tuning import streaming_gc
from experiments.running.progress import RunProgress
from experiments.running.streams import EpisodeTally, StreamSetup, play_streams

__all__ = ["play_in_workers", "prepare_workers", "worker_context", "ForwardingWriter", "FailedEpisode",
           "WorkerCounters", "WorkerFinished", "auto_workers", "worker_count", "AUTO_MIN_STREAMS",
           "AUTO_STREAMS_PER_WORKER"]

logger = logging.getLogger(__name__)
POLL_S = 0.2  # how often the parent looks for a worker that died without a word
# workers=auto (issue 25's 16-core runs, 50 ms server): one event loop keeps up with 64 streams (0.97 of the ceiling)
# and not with 256 (0.27-0.32), where 8 workers, 32 streams each, did best (0.79-0.82).
AUTO_MIN_STREAMS = 128
AUTO_STREAMS_PER_WORKER = 32


def worker_context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """How workers start: forked from a fork server that preloaded this module where the OS has one, else spawned."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_preloaded_modules())  # no effect once the server runs: it has loaded them
        return context
    return multiprocessing.get_context("spawn")


def _preloaded_modules() -> list[str]:
    """What the fork server imports: this module, and the module of a library's start method made the default.

    Each new process is told the parent's default start method and sets it before anything else: in a Hydra joblib
    sweep the default is loky's, which a process that never imported loky does not know (it could not start).
    """
    modules = [__name__]
    method = multiprocessing.get_start_method(allow_none=True)
    if method is not None and method not in ("fork", "spawn", "forkserver"):
        modules.append(type(multiprocessing.get_context(method)).__module__)
    return modules


def prepare_workers() -> None:
    """Start the workers' fork server now (if it is not running), so its imports overlap what the caller does next.

    Cheap: it starts a process and returns; the first worker waits for the server's imports if they are not done.
    """
    if worker_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_workers(streams: int, cores: int | None = None) -> int:
    """Worker processes for ``streams`` streams in flight on ``cores`` cores (default: this process's), for ``auto``.

    One process below :data:`AUTO_MIN_STREAMS` streams or on two cores or fewer; else one per
    :data:`AUTO_STREAMS_PER_WORKER` streams, at most ``cores - 1`` (the parent writes the results on its own).
    """
    cores = usable_cores() if cores is None else cores
    if streams < AUTO_MIN_STREAMS or cores <= 2:
        return 1
    return max(1, min(streams // AUTO_STREAMS_PER_WORKER, cores - 1))


def worker_count(setting: int | str, streams: int, cores: int | None = None) -> int:
    """The worker processes asked for: ``setting`` (``workers=``: an int as given, or ``"auto"``: :func:`auto_workers`).

    Raises:
        ValueError: ``setting`` is neither ``"auto"`` nor an int >= 1.
    """
    check_workers(setting)
    if setting == "auto":
        return auto_workers(streams, cores)
    assert isinstance(setting, int)
    return setting


# What a worker sends the parent, besides a FinishedEpisode (experiments/records/results.py).
@dataclass(frozen=True)
class FailedEpisode:
    """An episode that could not finish: its ``status: "failed"`` row."""

    row: dict[str, Any]


@dataclass(frozen=True)
class WorkerCounters:
    """The worker's LLM client counters, sent once its streams are over (the parent adds them to its own)."""

    usage: Usage
    retries: dict[str, int]
    failures: int


@dataclass(frozen=True)
class WorkerFinished:
    """The worker's last message."""


class ForwardingWriter:
    """What a worker's streams write through: the parent's writer, over a queue (a ``ResultSink``).

    ``is_done`` answers from the parent's view when the worker started (plus what this worker finished);
    ``load_state`` reads the state files, which the parent writes before it writes an episode's row.
    """

    def __init__(self, run_dir: Path, done: Iterable[EpisodeKey], outbox: Any) -> None:
        self.run_dir = run_dir
        self.done = set(done)
        self.outbox = outbox

    def is_done(self, key: EpisodeKey) -> bool:
        """Done in the parent's view when the worker started, or finished by this worker since."""
        return key in self.done

    def load_state(self, key: EpisodeKey) -> dict[str, Any] | None:
        """The state the parent saved after episode ``key``, if any."""
        return load_state(self.run_dir, key)

    def write_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = (),  # type: ignore[assignment]  # empty, never mutated
                      agent_state: dict[str, Any] | None = None,
                      calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]] = ()) -> None:
        """Send a finished episode to the parent (a :class:`~experiments.records.results.FinishedEpisode`)."""
        # The transcript lines travel as built (WrittenCalls), not as the records and their message dicts: the
        # parent would only build them again.
        if isinstance(calls, WrittenCalls):
            written = calls
        else:
            written = (calls if isinstance(calls, EpisodeCalls) else EpisodeCalls(calls)).written()
        self.outbox.put(FinishedEpisode(row, list(steps), agent_state, written))
        self.done.add(EpisodeKey.of(row))

    def commit_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = (),  # type: ignore[assignment]  # empty, never mutated
                       agent_state: dict[str, Any] | None = None,
                       calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]] = ()) -> Awaitable[None]:
        """Send a finished episode to the parent, which commits it (:meth:`write_episode`); nothing to wait for."""
        self.write_episode(row, steps, agent_state, calls)
        return asyncio.sleep(0)

    def write_failure(self, row: dict[str, Any]) -> None:
        """Send a failed episode's row to the parent."""
        self.outbox.put(FailedEpisode(row))


def _worker(config: dict[str, Any], run_dir: str, seeds: list[int], done: list[EpisodeKey],
            client: LLMClient | None, outbox: Any, environ: dict[str, str]) -> None:
    """A worker process: play ``seeds``' streams, send every episode, then the client's counters."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; a Ctrl-C reaches the whole group
    # Forked from the fork server, the worker has its environment, from when it started: an API key set in the
    # parent since would be missing. (multiprocessing brings the parent's cwd and sys.path itself.)
    os.environ.clear()
    os.environ.update(environ)
    cfg = OmegaConf.create(config)
    writer = ForwardingWriter(Path(run_dir), done, outbox)

    async def play() -> None:
        setup = StreamSetup(cfg, model=client.model if client else None)
        progress = RunProgress(enabled=False)  # the parent shows the run's progress
        progress.add_group(setup.group, len(setup.keys(seeds)))
        try:
            with streaming_gc():
                await play_streams(setup, writer, client, seeds, progress, asyncio.Semaphore(cfg.concurrency))
        finally:
            if client is not None:
                await client.aclose()

    try:
        asyncio.run(play())
    finally:
        if client is not None:
            outbox.put(WorkerCounters(client.usage, dict(client.retries), client.failures))
        outbox.put(WorkerFinished())


def _receive(outbox: Any, most: int = 256) -> list[Any]:
    """The workers' next messages: waits up to :data:`POLL_S` for one, then takes what else has arrived.

    Many streams end episodes together; one trip to the executor per batch, not per message, keeps the parent's
    loop free for writing them.
    """
    try:
        messages = [outbox.get(True, POLL_S)]
    except queue_module.Empty:
        return []
    with contextlib.suppress(queue_module.Empty):
        while len(messages) < most:
            messages.append(outbox.get_nowait())
    return messages


def _share(total: int, workers: int, index: int) -> int:
    return total // workers + int(index < total % workers)


async def play_in_workers(cfg: DictConfig, writer: ResultsWriter, client: LLMClient | None, seeds: list[int],
                          keys: list[EpisodeKey], progress: RunProgress, group: str,
                          workers: int, wandb_run: Any = None) -> dict[EpisodeKey, str]:
    """Play ``seeds``' streams in ``workers`` processes, writing their episodes through ``writer``.

    Seeds are dealt round-robin; ``cfg.concurrency`` and the client's request limit are split between the
    workers. Returns the episodes that failed, with their error, as ``play_streams`` does. The workers'
    LLM usage and retries are added to ``client``'s counters; finished episodes are logged to ``wandb_run`` here,
    as the one-process loop does.
    """
    workers = min(workers, len(seeds))
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    context = worker_context()
    outbox = context.Queue()
    done = [key for key in keys if writer.is_done(key)]
    environ = dict(os.environ)
    processes = []
    for index in range(workers):
        worker_config = {**config, "workers": 1, "progress": False,
                         "concurrency": max(1, _share(int(cfg.concurrency), workers, index))}
        worker_client = None
        if client is not None:
            worker_client = client.copy(max_concurrency=max(1, _share(client.max_concurrency, workers, index)),
                                        slot_count=None)  # slot tables of several processes would collide
        process = context.Process(target=_worker, daemon=True, name=f"textgym-worker-{index}",
                                  args=(worker_config, str(writer.run_dir), seeds[index::workers], done,
                                        worker_client, outbox, environ))
        process.start()
        processes.append(process)
    logger.info("%s: %d streams in %d worker processes (pids %s)", group, len(seeds), workers,
                ", ".join(str(process.pid) for process in processes))
    failures: dict[EpisodeKey, str] = {}
    sink = _Sink(writer, client, progress, group, failures, wandb_run)
    loop = asyncio.get_running_loop()
    running = len(processes)
    try:
        while running:
            messages = await loop.run_in_executor(None, _receive, outbox)
            if not messages and not any(process.is_alive() for process in processes):
                logger.error("a worker process ended without finishing (exit codes %s); its unfinished "
                             "episodes are left for the rerun", [p.exitcode for p in processes])
                break
            for message in messages:
                running -= sink.handle(message)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        if running:  # stopped early: what the workers sent before they stopped is still written
            with contextlib.suppress(Exception):
                while True:
                    sink.handle(outbox.get(timeout=POLL_S))
        for process in processes:
            process.join(timeout=5)
        await sink.drain()
    return failures


class _Sink:
    """Where the workers' messages land: the writer, the progress display, the client's counters and wandb."""

    def __init__(self, writer: ResultsWriter, client: LLMClient | None, progress: RunProgress, group: str,
                 failures: dict[EpisodeKey, str], wandb_run: Any) -> None:
        self.writer, self.client, self.progress, self.group = writer, client, progress, group
        self.failures, self.tally = failures, EpisodeTally(progress, group, wandb_run)
        self.commits: set[asyncio.Task[None]] = set()

    def handle(self, message: FinishedEpisode | FailedEpisode | WorkerCounters | WorkerFinished) -> int:
        """Write one worker message; 1 when it says that worker is finished.

        A finished episode is committed in a task of its own, so the episodes arriving together share their
        fsyncs (group commit, ``ResultsWriter.commit_episode``); :meth:`drain` waits for them all.
        """
        if isinstance(message, FinishedEpisode):
            written = self.writer.commit_episode(*message)  # written in arrival order, kept for good later
            task = asyncio.get_running_loop().create_task(self.tally.count(message.row, written))
            self.commits.add(task)
            task.add_done_callback(self.commits.discard)
        elif isinstance(message, FailedEpisode):
            self.writer.write_failure(message.row)
            self.failures[EpisodeKey.of(message.row)] = message.row["error"]
            self.progress.episode_finished(self.group, failed=True)
        elif isinstance(message, WorkerCounters) and self.client is not None:
            self.client.usage += message.usage
            self.client.retries.update(message.retries)
            self.client.failures += message.failures
        return int(isinstance(message, WorkerFinished))

    async def drain(self) -> None:
        """Wait until every finished episode received is on disk (raising what a commit raised)."""
        while self.commits:
            await asyncio.gather(*self.commits)
