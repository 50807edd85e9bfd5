"""What every ``textgym-*`` command does the same way at its edges: exit codes, signals, one-line config errors.

- A config or value error prints ``<command>: error: <one line>`` and exits 2 (the traceback first with
  ``verbose=true`` or ``HYDRA_FULL_ERROR=1``); an unknown config group option says "did you mean" (difflib over
  the group's options, as ``gym.make`` does for env ids) before Hydra's 30-line report would.
- SIGINT and SIGTERM stop a run between two steps (finished episodes are on disk), say how to resume and exit
  130/143, the shell's convention for death by a signal.
- A run that fails before it wrote anything leaves no run dir behind (Hydra makes one, with ``.hydra/``, first).
- In a Hydra sweep a job never exits the process (the basic launcher runs the other jobs in it): it raises
  :class:`JobFailed`, and Hydra exits 1 after every job has run.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import os
import shutil
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import CompactHydraException, HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agents.llm.client import LLMError
from experiments.config import CONF_DIR, ConfigComposed, group_options, register_resolvers

__all__ = ["CONFIG_ERRORS", "Interrupted", "JobFailed", "JobOutcome", "stop_on_signals", "run_async",
           "config_error_line", "exit_on_config_error", "exit_on_interrupt", "guard_job", "run_job",
           "unknown_choice", "hydra_command", "discard_unused_run_dir"]

T = TypeVar("T")

# What a run can fail with before any episode starts: bad values, a config Hydra composed but we refuse, a run
# dir made with other settings, missing input files, an unreachable or unusable server (the client's preflight).
# Episodes never raise these out of a run: their failures are recorded.
CONFIG_ERRORS = (ValueError, OmegaConfBaseException, HydraException, FileNotFoundError, LLMError)
# What a run dir holds before any result: Hydra's .hydra/ and <job>.log, the writer's run_identity.json.
RUN_DIR_BOOKKEEPING = {".hydra", "run_identity.json"}


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped the run; finished episodes are on disk."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for death by a signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class JobFailed(CompactHydraException):
    """A sweep job's one-line reason; Hydra runs the other jobs, then exits 1 printing only this line."""


class JobOutcome(Protocol):
    """How a command's job ended: whether all of it is done, and what to print."""

    @property
    def ok(self) -> bool:
        """Whether everything asked for is done (exit 0)."""
        ...

    def summary(self) -> str:
        """What to print at the end."""
        ...


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
            received = None  # type: ignore[assignment]  # None: no handler, nothing to report
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


def verbose_requested(cfg: DictConfig | None = None) -> bool:
    """Whether the user asked for tracebacks: ``HYDRA_FULL_ERROR=1`` or the config's ``verbose=true``."""
    return bool(os.environ.get("HYDRA_FULL_ERROR") == "1" or (cfg is not None and cfg.get("verbose")))


def config_error_line(error: BaseException) -> str:
    """A config error as one line: the message's first line (OmegaConf appends the key's details below it)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def exit_on_config_error(command: str, error: BaseException, verbose: bool = False) -> None:
    """Print ``<command>: error: <one line>`` (the traceback first when ``verbose`` or HYDRA_FULL_ERROR=1), exit 2."""
    if verbose or verbose_requested():
        traceback.print_exception(error)
    print(f"{command}: error: {config_error_line(error)}", file=sys.stderr)
    sys.exit(2)


def exit_on_interrupt(command: str, stop: Interrupted, run_dir: str | Path) -> None:
    """Say what an interruption kept and how to resume, then exit 130 (SIGINT) or 143 (SIGTERM)."""
    print(f"{command}: interrupted by {signal.Signals(stop.signum).name}: the episodes in flight were abandoned, "
          f"every finished one is saved in {run_dir}; run the same command again to resume", file=sys.stderr)
    sys.exit(stop.exit_code)


def discard_unused_run_dir(run_dir: str | Path) -> bool:
    """Remove ``run_dir`` when it holds no result: only ``.hydra/``, log files and ``run_identity.json``.

    Its parents that are left empty go too, up to the current directory. Returns whether it was removed.
    """
    path, cwd = Path(run_dir).resolve(), Path.cwd().resolve()
    if path == cwd or path in cwd.parents:  # hydra.run.dir=. : never the directory the user stands in
        return False
    if not path.is_dir() or any(entry.name not in RUN_DIR_BOOKKEEPING and entry.suffix != ".log"
                                for entry in path.iterdir()):
        return False
    shutil.rmtree(path)
    for parent in path.parents:
        if parent == cwd or cwd not in parent.parents or any(parent.iterdir()):
            break
        parent.rmdir()
    return True


def guard_job(command: str, cfg: DictConfig, job: Callable[[], T], run_dir: str | Path) -> T:
    """Run a command's job; an interruption or a config error ends the command as the module docstring says."""
    in_sweep = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        return job()
    except Interrupted as stop:
        exit_on_interrupt(command, stop, run_dir)
        raise  # unreachable: exit_on_interrupt exits
    except CONFIG_ERRORS as error:
        discard_unused_run_dir(run_dir)
        if in_sweep:
            if verbose_requested(cfg):
                raise
            raise JobFailed(f"{run_dir}: {config_error_line(error)}") from error
        exit_on_config_error(command, error, verbose_requested(cfg))
        raise  # unreachable


def run_job(command: str, cfg: DictConfig, job: Callable[[], JobOutcome], run_dir: str | Path) -> None:
    """:func:`guard_job`, then print the outcome's summary; exit 1 (:class:`JobFailed` in a sweep) if not all done."""
    outcome = guard_job(command, cfg, job, run_dir)
    print(outcome.summary())
    if not outcome.ok:
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise JobFailed(f"{run_dir}: {outcome.summary().splitlines()[0]}")
        sys.exit(1)


def unknown_choice(config_name: str, overrides: Sequence[str]) -> str | None:
    """The first ``group=option`` in ``overrides`` naming an option the group does not have, as one line.

    Only the groups in ``conf/<config_name>.yaml``'s defaults list are checked; whatever else is wrong Hydra
    reports itself.
    """
    defaults = cast(DictConfig, OmegaConf.load(CONF_DIR / f"{config_name}.yaml")).get("defaults", [])
    groups = {next(iter(entry)) for entry in defaults if OmegaConf.is_dict(entry) or isinstance(entry, dict)}
    try:
        parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    except OverrideParseException:
        return None  # Hydra says what is wrong with the syntax
    for override in parsed:
        group = override.key_or_group
        if group not in groups or override.is_delete() or override.package is not None:
            continue
        options = group_options(group)
        chosen = override.sweep_string_iterator() if override.is_sweep_override() else [override.value()]
        for choice in chosen:
            if isinstance(choice, str) and choice not in options:
                close = difflib.get_close_matches(choice, options, n=1)
                hint = f"did you mean {group}={close[0]}? " if close else ""
                return f"unknown {group} {choice!r}: {hint}{group} is one of {', '.join(options)}"
    return None


def hydra_command(command: str, hydra_main: Callable[[], None], config_name: str,
                  argv: Sequence[str] | None = None) -> None:
    """Run a ``@hydra.main`` function as ``command``; a config Hydra could not compose exits 2.

    An unknown group option is caught before Hydra starts (one line, "did you mean"); anything else Hydra could not
    compose it reports itself, and its exit 1 becomes 2. A job's own errors are the job's (see :func:`run_job`):
    ``hydra.callbacks.composed`` in the command's config tells them apart.
    """
    register_resolvers()  # run dir names and the --help texts use them
    problem = unknown_choice(config_name, sys.argv[1:] if argv is None else argv)
    if problem is not None:
        print(f"{command}: error: {problem}", file=sys.stderr)
        sys.exit(2)
    try:
        hydra_main()
    except SystemExit as stop:
        if stop.code == 1 and not ConfigComposed.composed:
            sys.exit(2)  # Hydra already printed what it could not compose (unknown key, bad syntax)
        raise
    except Exception:  # HYDRA_FULL_ERROR=1: Hydra re-raised instead of printing
        if ConfigComposed.composed:
            raise
        traceback.print_exc()
        sys.exit(2)
