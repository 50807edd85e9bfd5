"""The report's cost view: what one normalized point costs each contender, and the CPU-time records behind it.

A *normalized point* is a normalized score of 1, PPO's level on that env (random = 0). For a language agent, one
point costs its per-episode cost divided by its normalized score: tokens, dollars (``llm.prices``; the embedded
model and any model without a price cost $0), wall-seconds and CPU-seconds. A score that is undefined (an anchor
missing, PPO and random tied) or not positive buys no point: "n/a (no positive score)", never a division. PPO is the
point by definition: it costs its training (environment steps, CPU- and wall-seconds, once) plus an evaluation
episode's CPU-seconds.

CPU-seconds come from ``cpu_time.json`` files (:func:`record_cpu`), one per directory they cover, phases summed
over the command's invocations (a resumed run adds its share):

- ``textgym-ppo`` writes ``training`` and ``evaluation`` into its run dir (``time.process_time``: every thread of
  the process, torch's included); they cover that run's PPO rows.
- ``textgym-compare`` writes ``language_agents`` into its ``eval`` dir: the process's CPU time while the language
  agents played, the embedded llama.cpp server included (it runs in this process; a remote server's CPU is not
  seen). Streams of every group share that time, so each group gets the part in proportion to its episodes' wall
  time. Runs with no record (a ``textgym-eval`` on its own) show CPU-seconds as "n/a (not recorded)".
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from experiments.records.results import load_episodes
from experiments.reports.contamination import reads_text
from experiments.variants import variant_name

__all__ = ["CPU_FILE", "LANGUAGE_AGENTS", "TRAINING", "EVALUATION", "record_cpu", "cpu_clock", "CostRow",
           "cost_rows", "cost_markdown", "write_costs", "COSTS_CSV", "NO_POSITIVE_SCORE"]

CPU_FILE = "cpu_time.json"
COSTS_CSV = "costs.csv"
TRAINING, EVALUATION, LANGUAGE_AGENTS = "training", "evaluation", "language_agents"
NO_POSITIVE_SCORE = "n/a (no positive score)"
NOT_RECORDED = "n/a (not recorded)"


def record_cpu(directory: str | Path, phase: str, cpu_s: float, wall_s: float) -> None:
    """Add ``cpu_s`` and ``wall_s`` to ``phase`` of ``directory/cpu_time.json`` (written atomically)."""
    path = Path(directory) / CPU_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = json.loads(path.read_text()) if path.exists() else {}
    phase_record = record.setdefault(phase, {"cpu_s": 0.0, "wall_s": 0.0})
    phase_record["cpu_s"] = round(phase_record["cpu_s"] + cpu_s, 3)
    phase_record["wall_s"] = round(phase_record["wall_s"] + wall_s, 3)
    partial = path.with_name(f"{CPU_FILE}.{os.getpid()}.partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(path)


@contextmanager
def cpu_clock(directory: str | Path, phase: str) -> Iterator[None]:
    """Record the CPU- and wall-seconds this process spends in the block as ``phase`` of ``directory``.

    Recorded also when the block raises: what was spent was spent.
    """
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield
    finally:
        record_cpu(directory, phase, time.process_time() - cpu, time.perf_counter() - wall)


class ScoredGroup(Protocol):
    """What the cost view reads of a report row (``experiments.reports.report.ReportRow``)."""

    env: str
    level: int | None
    agent: str
    llm_model: str
    episodes: int
    normalized_score: float
    tokens_per_episode: float
    cost_per_episode_usd: float
    obfuscation_seed: int | None


@dataclass
class CostRow:
    """What one contender's episodes cost, and what one normalized point costs it (NaN where undefined)."""

    env: str
    level: int | None
    agent: str
    llm_model: str
    variant: str
    normalized_score: float
    tokens_per_episode: float
    usd_per_episode: float
    wall_s_per_episode: float
    cpu_s_per_episode: float
    """NaN where no ``cpu_time.json`` covers the group."""
    tokens_per_point: float
    usd_per_point: float
    wall_s_per_point: float
    cpu_s_per_point: float
    ppo_env_steps: int | None = None
    """PPO: environment steps of training (a one-off cost, not per episode)."""
    ppo_train_cpu_s: float | None = None
    ppo_train_wall_s: float | None = None


GroupKey = tuple[str, Any, str, str, int | None]  # env, level, agent, model, obfuscation seed


def _group(row: dict[str, Any]) -> GroupKey:
    return row["env"], row["level"], row["agent"], row.get("llm_model") or "-", row.get("obfuscation_seed")


def _cpu_records(paths: Iterable[Path]) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in paths:
        if path.is_dir():
            found += [(file.parent, json.loads(file.read_text())) for file in sorted(path.rglob(CPU_FILE))]
    return found


def _cpu_by_group(paths: Iterable[Path]) -> tuple[dict[GroupKey, float], dict[GroupKey, dict[str, float]]]:
    """(CPU-seconds of each language-agent group's episodes, PPO's training/evaluation record by group)."""
    language: dict[GroupKey, float] = defaultdict(float)
    ppo: dict[GroupKey, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for directory, record in _cpu_records(paths):
        rows = load_episodes([directory])
        if LANGUAGE_AGENTS in record:  # shared by the groups in proportion to their episodes' wall time
            wall: dict[GroupKey, float] = defaultdict(float)
            for row in rows:
                if reads_text(row):
                    wall[_group(row)] += float(row.get("wall_time_s") or 0.0)
            total = sum(wall.values())
            for group, seconds in wall.items():
                if total > 0:
                    language[group] += record[LANGUAGE_AGENTS]["cpu_s"] * seconds / total
        for phase in (TRAINING, EVALUATION):
            if phase in record:
                for group in {_group(row) for row in rows if row.get("kind") == "ppo"}:
                    ppo[group][f"{phase}_cpu_s"] += record[phase]["cpu_s"]
                    ppo[group][f"{phase}_wall_s"] += record[phase]["wall_s"]
    return language, ppo


def _per_point(value: float, score: float) -> float:
    return value / score if not math.isnan(score) and score > 0 and not math.isnan(value) else math.nan


def cost_rows(report: Sequence[ScoredGroup], rows: list[dict[str, Any]], paths: Iterable[str | Path] = ()
              ) -> list[CostRow]:
    """The cost view of ``report`` (its groups' normalized scores).

    Computed from the episode ``rows`` behind it and the ``cpu_time.json`` records under ``paths``.
    """
    language_cpu, ppo_cpu = _cpu_by_group(Path(p) for p in paths)
    finished: dict[GroupKey, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("status", "done") == "done":
            finished[_group(row)].append(row)
    result = []
    for r in report:
        if not r.episodes:
            continue
        group = (r.env, r.level, r.agent, r.llm_model, getattr(r, "obfuscation_seed", None))
        members = finished.get(group, [])
        wall = sum(float(m.get("wall_time_s") or 0.0) for m in members) / len(members) if members else math.nan
        score = r.normalized_score
        if r.agent == "ppo":
            record = ppo_cpu.get(group, {})
            steps = max((int(m.get("env_steps_trained") or 0) for m in members), default=0)
            train_cpu = record.get(f"{TRAINING}_cpu_s", math.nan)
            eval_cpu = record.get(f"{EVALUATION}_cpu_s", math.nan) / len(members) if members else math.nan
            # One point is PPO's own level: its training once, plus an evaluation episode.
            result.append(CostRow(
                env=r.env, level=r.level, agent=r.agent, llm_model=r.llm_model, variant=variant_name(None),
                normalized_score=score, tokens_per_episode=0.0, usd_per_episode=0.0, wall_s_per_episode=wall,
                cpu_s_per_episode=eval_cpu, tokens_per_point=0.0, usd_per_point=0.0,
                wall_s_per_point=_per_point(record.get(f"{TRAINING}_wall_s", math.nan) + wall, score),
                cpu_s_per_point=_per_point(train_cpu + eval_cpu, score), ppo_env_steps=steps,
                ppo_train_cpu_s=train_cpu, ppo_train_wall_s=record.get(f"{TRAINING}_wall_s", math.nan)))
            continue
        cpu = language_cpu[group] / len(members) if group in language_cpu and members else math.nan
        result.append(CostRow(
            env=r.env, level=r.level, agent=r.agent, llm_model=r.llm_model,
            variant=variant_name(getattr(r, "obfuscation_seed", None)), normalized_score=score,
            tokens_per_episode=r.tokens_per_episode, usd_per_episode=r.cost_per_episode_usd,
            wall_s_per_episode=wall, cpu_s_per_episode=cpu,
            tokens_per_point=_per_point(r.tokens_per_episode, score),
            usd_per_point=_per_point(r.cost_per_episode_usd, score), wall_s_per_point=_per_point(wall, score),
            cpu_s_per_point=_per_point(cpu, score)))
    return result


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _point_cell(value: float, score: float, digits: int, recorded: bool = True) -> str:
    if math.isnan(score) or score <= 0:
        return NO_POSITIVE_SCORE
    return _number(value, digits) if recorded else NOT_RECORDED


def cost_markdown(table: list[CostRow]) -> str:
    """The ``## Cost`` section of ``report.md``."""
    head = ("## Cost: what one normalized point costs\n\n"
            "One point = a normalized score of 1 (PPO's level; random = 0): per-episode cost / normalized score. "
            "$ from `llm.prices` (the embedded model, and any model without a price, cost $0). CPU-seconds: this "
            "process's CPU time while the language agents played (the embedded llama.cpp server included, a remote "
            "server's not), shared among groups by their episodes' wall time; `n/a (not recorded)` for runs "
            "without a `cpu_time.json` (textgym-eval on its own). Wall s/ep: each episode's own duration; streams "
            "play at once, so they overlap. PPO's point: its training (once) plus an evaluation episode.\n\n")
    if not table:
        return head + "No finished episodes.\n"
    lines = ["| env | level | agent | model | variant | normalized | tokens/ep | $/ep | wall s/ep | CPU s/ep "
             "| tokens/point | $/point | wall s/point | CPU s/point | PPO training |", "|" + "---|" * 15]
    for r in table:
        score = r.normalized_score
        cpu_ep = _number(r.cpu_s_per_episode, 2) if not math.isnan(r.cpu_s_per_episode) else NOT_RECORDED
        training = "-"
        if r.agent == "ppo":
            training = (f"{r.ppo_env_steps:,} env steps, {_number(r.ppo_train_cpu_s, 1)} CPU s, "
                        f"{_number(r.ppo_train_wall_s, 1)} wall s")
        lines.append(
            f"| {r.env} | {r.level if r.level is not None else '-'} | {r.agent} | {r.llm_model} | {r.variant} "
            f"| {_number(score, 2)} | {_number(r.tokens_per_episode, 0)} | {_number(r.usd_per_episode, 4)} "
            f"| {_number(r.wall_s_per_episode, 2)} | {cpu_ep} | {_point_cell(r.tokens_per_point, score, 0)} "
            f"| {_point_cell(r.usd_per_point, score, 4)} | {_point_cell(r.wall_s_per_point, score, 2)} "
            f"| {_point_cell(r.cpu_s_per_point, score, 2, not math.isnan(r.cpu_s_per_point))} | {training} |")
    return head + "\n".join(lines) + "\n"


def write_costs(report: Sequence[ScoredGroup], rows: list[dict[str, Any]], paths: Iterable[str | Path],
                out_dir: Path) -> tuple[list[CostRow], str]:
    """Write ``costs.csv`` into ``out_dir``; returns the table and its ``report.md`` section."""
    table = cost_rows(report, rows, paths)
    with (out_dir / COSTS_CSV).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(CostRow)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in table)
    return table, cost_markdown(table)
