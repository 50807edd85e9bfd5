"""textgym-report: aggregate result files into a table, CSV and plots.

    textgym-report results=[runs/eval,runs/ppo] out_dir=runs/report

Reads only the result files under the given paths: the episodes files (``episodes.jsonl`` and per-shard
``episodes.shard<i>of<n>.jsonl``), PPO's ``learning_curve.csv``, and, for episodes with no prompt tokens served
from the server's cache, their ``calls.jsonl`` (did the server report 0, or nothing?). Per env x level x agent:
mean return +- 95% CI over seeds (each seed's episodes are averaged first), the return of the streams' last episode
(for streams of several episodes: what an agent that learns across episodes ends with), the normalized score
(random = 0, PPO = 1, on the same env; undefined where they tie), the invalid-action rate, tokens and dollars per
episode, prompt tokens per decision and how many of them were new (not served from the server's prefix cache), and
how many episodes failed.
Failed episodes never count as returns; ``report.md`` lists their reasons. Plots: ``scores.png`` (bars per env x
level x agent with PPO/random lines) and ``learning_curves.png`` (L3 language agents' return by episode, where
they learn across episodes, beside PPO's return over env steps); a panel with nothing to draw says why.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from experiments.cli import guard_job, hydra_command
from experiments.records.results import DONE, EpisodeKey, episode_files, load_episodes
from experiments.records.transcripts import Transcript
from experiments.reports.contamination import write_contamination
from experiments.reports.costs import write_costs
from experiments.reports.intervals import mean_ci95
from experiments.variants import variant_name
from textgym.levels import level_spec

__all__ = ["ReportRow", "summarize", "write_report", "main", "LEARNING_CURVE_FILE", "failures_table", "markdown_table",
           "episodes_reporting_cache"]

logger = logging.getLogger(__name__)
LEARNING_CURVE_FILE = "learning_curve.csv"


@dataclass
class ReportRow:
    """One line of the report: an (env, level, agent) group."""

    env: str
    level: int | None
    agent: str
    llm_model: str
    seeds: int
    episodes: int
    mean_return: float
    ci95: float
    last_episode: int
    """Index of the streams' last episode (0: one episode per stream, so ``last_return`` is the mean)."""
    last_return: float
    """Mean over seeds of each stream's return in episode ``last_episode``."""
    normalized_score: float
    invalid_action_rate: float
    tokens_per_episode: float
    cost_per_episode_usd: float
    prompt_tokens_per_decision: float
    """Prompt tokens sent per env step, the agent's calls around the episode (EXE's suggestion, ...) included."""
    new_prompt_tokens_per_decision: float | None
    """The part of them the server read anew (prompt tokens minus those it served from its prefix cache);
    ``None`` where the server did not say how many it served from its cache."""
    failed: int
    """Episodes recorded as failed (and not finished since): not counted in any number above."""
    normalized_undefined: str | None = None
    """Why ``normalized_score`` is undefined (``"PPO and random tie"``, ``"no PPO run"``, ...); ``None`` if defined."""
    obfuscation_seed: int | None = None
    """The obfuscated text variant the group played (``experiments/variants.py``); ``None`` = the plain text."""


def _seed_means(rows: list[dict[str, Any]]) -> list[float]:
    """Mean return of each seed's stream; PPO streams of different training seeds count separately."""
    per_seed: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        per_seed[(row.get("train_seed") or 0, int(row["seed"]))].append(float(row["return"]))
    return [float(np.mean(v)) for _, v in sorted(per_seed.items())]


def _last_episode(rows: list[dict[str, Any]]) -> tuple[int, float]:
    """The streams' last episode index, and the mean over streams of their return in it."""
    if not rows:
        return 0, math.nan
    last = max(int(row["episode"]) for row in rows)
    returns = [float(row["return"]) for row in rows if int(row["episode"]) == last]
    return last, float(np.mean(returns))


def _anchor(rows: list[dict[str, Any]], env: str, agent: str) -> float:
    """Mean return of the ``agent`` anchor (random or ppo) on ``env``, over all its seeds; NaN if absent."""
    matching = [r for r in rows if r["env"] == env and r["agent"] == agent]
    return float(np.mean(_seed_means(matching))) if matching else math.nan


TIE = "PPO and random tie"


def normalized_score(value: float, random_mean: float, ppo_mean: float) -> tuple[float, str | None]:
    """(value - random) / (PPO - random), and why it is undefined where it is.

    Returns:
        (score, None), or (NaN, reason) where an anchor is missing or PPO and random tie (the denominator is 0).
    """
    missing = [name for name, anchor in (("PPO", ppo_mean), ("random", random_mean)) if math.isnan(anchor)]
    if missing:
        return math.nan, f"no {' or '.join(missing)} run"
    if math.isclose(ppo_mean, random_mean, rel_tol=1e-9, abs_tol=1e-12):
        return math.nan, TIE
    return (value - random_mean) / (ppo_mean - random_mean), None


def _is_done(row: dict[str, Any]) -> bool:
    return row.get("status", DONE) == DONE


def _group_key(row: dict[str, Any]) -> tuple[str, int | None, str, str]:
    return row["env"], row["level"], row["agent"], row.get("llm_model") or ""


def _group_order(key: tuple[str, int | None, str, str]) -> tuple[str, int, str, str]:
    return key[0], key[1] or 0, key[2], key[3]


def episodes_reporting_cache(rows: list[dict[str, Any]], paths: Iterable[Path]) -> set[EpisodeKey]:
    """The episodes of ``rows`` whose server said how many prompt tokens it served from its prefix cache.

    A row counts them as a sum (0 also where the server said nothing), so a row with none cached is
    decided by its transcript (``calls.jsonl`` under ``paths``): a call whose usage names
    ``cached_prompt_tokens`` (even 0) was reported. Rows with no prompt tokens read nothing either way.
    """
    known = {EpisodeKey.of(row) for row in rows
             if row.get("cached_prompt_tokens") or not row.get("prompt_tokens")}
    undecided = {EpisodeKey.of(row) for row in rows} - known
    run_dirs = dict.fromkeys(file.parent for path in paths if path.exists() for file in episode_files(path))
    for run_dir in run_dirs:
        if undecided <= known:
            break
        known.update(key for key, usage in Transcript(run_dir).usages()
                     if usage.get("cached_prompt_tokens") is not None)
    return known


def _per_decision(rows: list[dict[str, Any]], reported: set[EpisodeKey]) -> tuple[float, float | None]:
    """Prompt tokens and new prompt tokens per env step of ``rows``; new is ``None`` unless all were reported."""
    steps = sum(int(r["steps"]) for r in rows)
    if not steps:
        return math.nan, math.nan
    prompt = sum(int(r["prompt_tokens"]) for r in rows)
    if any(EpisodeKey.of(r) not in reported for r in rows):
        return prompt / steps, None
    return prompt / steps, (prompt - sum(int(r.get("cached_prompt_tokens") or 0) for r in rows)) / steps


def summarize(rows: list[dict[str, Any]], reported: set[EpisodeKey] | None = None) -> list[ReportRow]:
    """Group episode rows and compute the report's numbers; failed rows are only counted, never averaged.

    Args:
        rows: episode rows (``load_episodes(..., include_failed=True)``).
        reported: the episodes whose server reported its prefix-cache hits (:func:`episodes_reporting_cache`);
            new prompt tokens are unknown for a group with any other episode (``None``: decided from the rows
            alone, without transcripts).
    """
    if reported is None:
        reported = episodes_reporting_cache(rows, ())
    groups: dict[tuple[str, int | None, str, str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:  # one model's agent is not another's, nor its plain text the obfuscated: reported apart
        groups[(*_group_key(row), row.get("obfuscation_seed"))].append(row)
    finished = [row for row in rows if _is_done(row)]
    report = []
    for (env, level, agent, model, obfuscation), group in sorted(
            groups.items(), key=lambda item: (_group_order(item[0][:4]), -1 if item[0][4] is None else item[0][4])):
        members = [row for row in group if _is_done(row)]
        mean, ci = mean_ci95(_seed_means(members))
        last_episode, last_return = _last_episode(members)
        random_mean, ppo_mean = _anchor(finished, env, "random"), _anchor(finished, env, "ppo")
        normalized, undefined = normalized_score(mean, random_mean, ppo_mean)
        steps = sum(int(r["steps"]) for r in members)
        prompt_per_decision, new_per_decision = _per_decision(members, reported)
        report.append(ReportRow(
            env=env, level=level, agent=agent, llm_model=model or "-", seeds=len(_seed_means(members)),
            episodes=len(members), mean_return=mean, ci95=ci, last_episode=last_episode, last_return=last_return,
            normalized_score=normalized,
            invalid_action_rate=sum(int(r["invalid_actions"]) for r in members) / steps if steps else 0.0,
            tokens_per_episode=float(np.mean([r["prompt_tokens"] + r["completion_tokens"] for r in members]))
            if members else math.nan,
            cost_per_episode_usd=float(np.mean([r["cost_usd"] for r in members])) if members else math.nan,
            prompt_tokens_per_decision=prompt_per_decision, new_prompt_tokens_per_decision=new_per_decision,
            failed=len(group) - len(members), normalized_undefined=undefined, obfuscation_seed=obfuscation,
        ))
    return report


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


UNKNOWN_NEW_TOKENS = "unknown"
UNKNOWN_NEW_TOKENS_NOTE = (
    f"`{UNKNOWN_NEW_TOKENS}` new prompt tokens: the server did not say how many prompt tokens it served from its "
    "prefix cache (OpenAI's and vLLM's `usage.prompt_tokens_details.cached_tokens`, llama.cpp's `timings.cache_n`), "
    "so how many it read anew is not known; they are not counted as all new."
)


def _normalized_cell(row: ReportRow) -> str:
    if row.normalized_undefined == TIE:
        return f"undefined: {TIE}"
    if row.normalized_undefined:
        return f"n/a ({row.normalized_undefined})"
    return _fmt(row.normalized_score)


def _new_tokens_cell(value: float | None) -> str:
    return UNKNOWN_NEW_TOKENS if value is None else _fmt(value, 0)


def markdown_table(report: list[ReportRow]) -> str:
    """The report as a markdown table, one line per :class:`ReportRow`.

    Then a note if any new prompt tokens are unknown.
    """
    header = ("| env | level | agent | model | seeds | episodes | return (mean ± 95% CI) | last episode "
              "| normalized | invalid % | tokens/ep | prompt tokens/decision | new prompt tokens/decision | $/ep "
              "| failed |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in report:
        ci = "" if math.isnan(r.ci95) else f" ± {_fmt(r.ci95)}"
        last = f"{_fmt(r.last_return)} (ep {r.last_episode + 1})" if r.last_episode else "-"
        agent = r.agent if r.obfuscation_seed is None else f"{r.agent} ({variant_name(r.obfuscation_seed)})"
        lines.append(f"| {r.env} | {r.level if r.level is not None else '-'} | {agent} | {r.llm_model} | {r.seeds} "
                     f"| {r.episodes} | {_fmt(r.mean_return)}{ci} | {last} | {_normalized_cell(r)} "
                     f"| {100 * r.invalid_action_rate:.1f} | {_fmt(r.tokens_per_episode, 0)} "
                     f"| {_fmt(r.prompt_tokens_per_decision, 0)} "
                     f"| {_new_tokens_cell(r.new_prompt_tokens_per_decision)} "
                     f"| {_fmt(r.cost_per_episode_usd, 4)} | {r.failed} |")
    if any(r.new_prompt_tokens_per_decision is None for r in report):
        lines += ["", UNKNOWN_NEW_TOKENS_NOTE]
    return "\n".join(lines)


def failures_table(rows: list[dict[str, Any]], extra: Iterable[tuple[str, str]] = ()) -> str:
    """Failed episodes grouped by env x level x agent x model and reason, plus ``extra`` (what, reason) lines.

    ``extra`` names parts that failed as a whole (``textgym-compare``: a PPO training, a group that could not start).
    Empty when nothing failed.
    """
    counts = Counter((_group_key(row), str(row.get("error"))) for row in rows if not _is_done(row))
    extra = list(extra)
    if not counts and not extra:
        return ""
    lines = ["| env | level | agent | model | failed | reason |", "|---|---|---|---|---|---|"]
    for ((env, level, agent, model), reason), count in sorted(counts.items(),
                                                             key=lambda item: (_group_order(item[0][0]), item[0][1])):
        lines.append(f"| {env} | {level if level is not None else '-'} | {agent} | {model or '-'} | {count} "
                     f"| {_cell(reason)} |")
    for what, reason in extra:
        lines.append(f"| {what} | | | | all | {_cell(reason)} |")
    return "\n".join(lines)


def _cell(text: str, limit: int = 300) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _learning_curves(paths: list[Path]) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """PPO learning curves by env: (env steps, mean training return) from each PPO run's learning_curve.csv."""
    curves: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for path in paths:
        for file in ([path] if path.is_file() else sorted(path.rglob(LEARNING_CURVE_FILE))):
            if file.name != LEARNING_CURVE_FILE:
                continue
            episodes = load_episodes([file.parent]) if (file.parent / "episodes.jsonl").exists() else []
            envs = {r["env"] for r in episodes}
            with file.open() as handle:
                table = [row for row in csv.DictReader(handle)]
            if not table or len(envs) != 1:
                continue
            columns = list(table[0])
            step_key = next((c for c in ("env_steps", "timesteps") if c in columns), columns[0])
            return_key = next((c for c in ("return_mean", "return") if c in columns), columns[1])
            steps = np.array([float(row[step_key]) for row in table])
            returns = np.array([float(row[return_key]) for row in table])
            curves[envs.pop()].append((steps, returns))
    return curves


def _say(ax: Any, message: str) -> None:
    """A panel with no data says why, in its middle."""
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def plot_scores(report: list[ReportRow], path: Path) -> None:
    _save(scores_figure(report), path)


def scores_figure(report: list[ReportRow]) -> Any:
    """Bars per level x language agent of each env, PPO's and random's mean as lines (a matplotlib ``Figure``).

    A panel without bars says why.
    """
    plt = _pyplot()

    envs = sorted({r.env for r in report})
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        ax.set_title(env)
        rows = [r for r in report if r.env == env and r.agent not in ("ppo", "random")]
        anchors = {anchor: [r for r in report if r.env == env and r.agent == anchor] for anchor in ("ppo", "random")}
        if not rows:
            present = [name for name, match in anchors.items() if match]
            _say(ax, f"no language-agent episode finished on {env}"
                     + (f"\n({' and '.join(present)} only: see report.md)" if present else ""))
            continue
        levels = sorted({r.level for r in rows if r.level is not None})
        agents = sorted({r.agent for r in rows})
        width = 0.8 / max(1, len(agents))
        for i, agent in enumerate(agents):
            values = [next((r for r in rows if r.level == lv and r.agent == agent), None) for lv in levels]
            x = np.arange(len(levels)) + i * width - 0.4 + width / 2
            ax.bar(x, [v.mean_return if v else np.nan for v in values], width,
                   yerr=[0 if not v or math.isnan(v.ci95) else v.ci95 for v in values], label=agent, capsize=3)
        lines = []
        for (anchor, match), style in zip(anchors.items(), ("--", ":"), strict=True):
            if match:
                value = float(np.mean([r.mean_return for r in match]))
                lines.append(value)
                ax.axhline(value, linestyle=style, color="black", label=f"{anchor} {value:.2f}")
        _fit_to_means(ax, [r.mean_return for r in rows] + lines, [r.ci95 for r in rows])
        ax.set_xticks(np.arange(len(levels)), [f"L{lv}" for lv in levels])
        ax.set_ylabel("mean return")
        ax.legend(fontsize=8)
    return fig


def _fit_to_means(ax: Any, values: list[float], ci95s: list[float]) -> None:
    """Keep the bars and anchors readable where a few seeds' t-interval dwarfs them (2 seeds: 12.7 std errors).

    The axis then spans the values with a margin, the longer error bars run off it, and the title says so.
    """
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return
    low, high = min(0.0, *finite), max(0.0, *finite)
    margin = max(high - low, 1e-9) * 0.5
    if any(not math.isnan(ci) and ci > 2 * (high - low + margin) for ci in ci95s):
        ax.set_ylim(low - margin, high + margin)
        ax.set_title(f"{ax.get_title()} (95% CIs run off the panel)")


def _learns(level: int | None) -> bool:
    """Whether a language agent at ``level`` carries what it learned from one episode to the next (L3)."""
    return level is not None and level_spec(level).self_experience


NO_LEARNING_RUNS = ("no L3 runs: language agents learn\nacross episodes only at L3\n"
                    "(e.g. textgym-compare levels=[3] episodes=5);\nat other levels episodes are independent\n"
                    "trials, reported in scores.png")


def plot_learning_curves(rows: list[dict[str, Any]], curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                         path: Path) -> None:
    _save(learning_curves_figure(rows, curves), path)


def learning_curves_figure(rows: list[dict[str, Any]], curves: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> Any:
    """Per env: L3 language agents' return by episode beside PPO's training curve (a matplotlib ``Figure``).

    Episodes are whole numbers from 1; a panel with nothing to draw says why.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    envs = sorted({r["env"] for r in rows} | set(curves))
    fig, axes = plt.subplots(len(envs), 2, figsize=(11, 3.5 * len(envs)), squeeze=False)
    for (left, right), env in zip(axes, envs, strict=True):
        by_group: dict[tuple[str, Any], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            if row["env"] == env and row["kind"] == "agent" and _learns(row["level"]):
                by_group[(row["agent"], row["level"])][int(row["episode"])].append(float(row["return"]))
        left.set_title(f"{env}: language agents learning across episodes (L3)")
        learning = {group: per_episode for group, per_episode in by_group.items() if len(per_episode) > 1}
        if not learning:
            _say(left, NO_LEARNING_RUNS if not by_group else
                 "L3 streams of one episode each:\nnothing to learn from yet\n(run more episodes, e.g. episodes=5)")
        else:
            for (agent, level), per_episode in sorted(learning.items(), key=str):
                episodes = sorted(per_episode)
                left.plot([e + 1 for e in episodes], [np.mean(per_episode[e]) for e in episodes], marker="o",
                          label=f"{agent} L{level}")
            last = max(max(per_episode) for per_episode in learning.values()) + 1
            left.set_xlim(0.5, last + 0.5)
            left.xaxis.set_major_locator(MaxNLocator(integer=True))  # episodes are whole numbers
            left.set_xlabel("episode")
            left.set_ylabel("return (mean over seeds)")
            left.legend(fontsize=7)
        right.set_title(f"{env}: PPO training")
        if not curves.get(env):
            _say(right, f"no PPO training curve for {env}")
            continue
        for steps, returns in curves[env]:
            right.plot(steps, returns, alpha=0.8)
        right.set_xlabel("environment steps")
        right.set_ylabel("episode return")
    return fig


def write_report(result_paths: list[str | Path], out_dir: str | Path,
                 failed_parts: Iterable[tuple[str, str]] = ()) -> list[ReportRow]:
    """Write ``report.md``, ``report.csv``, ``scores.png`` and ``learning_curves.png`` into ``out_dir``.

    Also the contamination view (``contamination.csv``/``.png``) and the cost view (``costs.csv``), both as
    sections of ``report.md`` too.

    ``report.md`` ends with a failures table (failed episodes by group and reason, and ``failed_parts``:
    (what, reason) for parts of a job that failed as a whole) when anything failed.

    Raises:
        ValueError: no episode (finished or failed) under ``result_paths`` and no failed part to report.
    """
    paths = [Path(p) for p in result_paths]
    rows = load_episodes([p for p in paths if p.exists()] if failed_parts else paths, include_failed=True)
    failed_parts = list(failed_parts)
    if not rows and not failed_parts:
        raise ValueError(f"no episodes found under {', '.join(map(str, paths))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = summarize(rows, episodes_reporting_cache(rows, paths))
    with (out / "report.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(ReportRow)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in report)
    failures = failures_table(rows, failed_parts)
    _, contamination = write_contamination(rows, out)  # contamination.csv/.png (experiments/reports/contamination.py)
    _, costs = write_costs(report, rows, paths, out)  # costs.csv (experiments/reports/costs.py)
    (out / "report.md").write_text(
        "# TextGym report\n\nNormalized score: (return - random) / (PPO - random) on the same env; "
        f"n/a where an anchor is missing, `undefined: {TIE}` where the two score the same (the denominator "
        "is 0). CI: 95% t-interval over seeds. Last episode: mean over seeds of the "
        "return in each stream's last episode. Failed episodes count in no number but `failed`. "
        "Per decision: per env step, the agent's LLM calls around the episode included; new prompt tokens are "
        "those the server read anew, not served from its prefix cache.\n\n"
        + markdown_table(report) + "\n"
        + f"\n{contamination}\n{costs}"
        + (f"\n## Failures\n\nRerun the same command to retry them.\n\n{failures}\n" if failures else "")
    )
    finished = [row for row in rows if _is_done(row)]
    if finished:
        plot_scores([r for r in report if r.episodes], out / "scores.png")
        plot_learning_curves(finished, _learning_curves(paths), out / "learning_curves.png")
    else:  # nothing finished: no numbers to draw, but the files the command names exist
        for name in ("scores.png", "learning_curves.png"):
            _empty_plot(out / name, "no finished episodes: see the failures in report.md")
    return report


def _empty_plot(path: Path, message: str) -> None:
    fig, ax = _pyplot().subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    _save(fig, path)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="report")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    out_dir = cfg.out_dir or run_dir
    results = [cfg.results] if isinstance(cfg.results, str) else list(cfg.results)  # results=runs/eval: one path
    guard_job("textgym-report", cfg, lambda: write_report(results, out_dir), run_dir)
    print((Path(out_dir) / "report.md").read_text())  # the table is the command's output
    logger.info("report written to %s", out_dir)


def main() -> None:
    """Console entry point: ``textgym-report results=[DIR,...]`` (``--help`` explains the keys)."""
    hydra_command("textgym-report", _hydra_main, "report")


if __name__ == "__main__":
    main()
