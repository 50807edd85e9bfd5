"""textgym-report: aggregate result files into a table, CSV and plots.

    textgym-report results=[runs/eval,runs/ppo] out_dir=runs/report

Reads only ``episodes.jsonl`` files (and PPO's ``learning_curve.csv``) under the given paths. Per
env x level x agent: mean return +- 95% CI over seeds (each seed's episodes are averaged first), the
normalized score (random = 0, PPO = 1, on the same env), the invalid-action rate, and tokens and
dollars per episode. Plots: ``scores.png`` (bars per env x level x agent with PPO/random lines) and
``learning_curves.png`` (language agents' return over episodes beside PPO's return over env steps).
"""

from __future__ import annotations

import csv
import functools
import logging
import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from scipy import stats

from experiments.results import load_episodes

__all__ = ["ReportRow", "summarize", "write_report", "main", "LEARNING_CURVE_FILE"]

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
    normalized_score: float
    invalid_action_rate: float
    tokens_per_episode: float
    cost_per_episode_usd: float


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN with fewer than two values)."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return float(array.mean()) if array.size else math.nan, math.nan
    half_width = stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size)
    return float(array.mean()), float(half_width)


def _seed_means(rows: list[dict[str, Any]]) -> list[float]:
    """Mean return of each seed's stream; PPO streams of different training seeds count separately."""
    per_seed: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        per_seed[(row.get("train_seed") or 0, int(row["seed"]))].append(float(row["return"]))
    return [float(np.mean(v)) for _, v in sorted(per_seed.items())]


def _anchor(rows: list[dict[str, Any]], env: str, agent: str) -> float:
    """Mean return of the ``agent`` anchor (random or ppo) on ``env``, over all its seeds; NaN if absent."""
    matching = [r for r in rows if r["env"] == env and r["agent"] == agent]
    return float(np.mean(_seed_means(matching))) if matching else math.nan


def summarize(rows: list[dict[str, Any]]) -> list[ReportRow]:
    """Group episode rows and compute the report's numbers."""
    groups: dict[tuple[str, int | None, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:  # one model's agent is not another's: they are reported apart
        groups[(row["env"], row["level"], row["agent"], row.get("llm_model") or "")].append(row)
    report = []
    for (env, level, agent, _), members in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or 0,
                                                                                      item[0][2], item[0][3])):
        mean, ci = mean_ci95(_seed_means(members))
        random_mean, ppo_mean = _anchor(rows, env, "random"), _anchor(rows, env, "ppo")
        span = ppo_mean - random_mean
        normalized = (mean - random_mean) / span if span and not math.isnan(span) else math.nan
        steps = sum(int(r["steps"]) for r in members)
        models = sorted({str(r.get("llm_model")) for r in members if r.get("llm_model")})
        report.append(ReportRow(
            env=env, level=level, agent=agent, llm_model=",".join(models) or "-", seeds=len(_seed_means(members)),
            episodes=len(members), mean_return=mean, ci95=ci, normalized_score=normalized,
            invalid_action_rate=sum(int(r["invalid_actions"]) for r in members) / steps if steps else 0.0,
            tokens_per_episode=float(np.mean([r["prompt_tokens"] + r["completion_tokens"] for r in members])),
            cost_per_episode_usd=float(np.mean([r["cost_usd"] for r in members])),
        ))
    return report


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown_table(report: list[ReportRow]) -> str:
    header = ("| env | level | agent | model | seeds | episodes | return (mean ± 95% CI) | normalized | invalid % "
              "| tokens/ep | $/ep |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in report:
        ci = "" if math.isnan(r.ci95) else f" ± {_fmt(r.ci95)}"
        lines.append(f"| {r.env} | {r.level if r.level is not None else '-'} | {r.agent} | {r.llm_model} | {r.seeds} "
                     f"| {r.episodes} | {_fmt(r.mean_return)}{ci} | {_fmt(r.normalized_score)} "
                     f"| {100 * r.invalid_action_rate:.1f} | {r.tokens_per_episode:.0f} "
                     f"| {r.cost_per_episode_usd:.4f} |")
    return "\n".join(lines)


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


def plot_scores(report: list[ReportRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r.env for r in report})
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        rows = [r for r in report if r.env == env and r.agent not in ("ppo", "random")]
        levels = sorted({r.level for r in rows if r.level is not None})
        agents = sorted({r.agent for r in rows})
        width = 0.8 / max(1, len(agents))
        for i, agent in enumerate(agents):
            values = [next((r for r in rows if r.level == lv and r.agent == agent), None) for lv in levels]
            x = np.arange(len(levels)) + i * width - 0.4 + width / 2
            ax.bar(x, [v.mean_return if v else np.nan for v in values], width,
                   yerr=[0 if not v or math.isnan(v.ci95) else v.ci95 for v in values], label=agent, capsize=3)
        for anchor, style in (("ppo", "--"), ("random", ":")):
            match = [r for r in report if r.env == env and r.agent == anchor]
            if match:
                ax.axhline(np.mean([r.mean_return for r in match]), linestyle=style, color="black", label=anchor)
        ax.set_xticks(np.arange(len(levels)), [f"L{lv}" for lv in levels])
        ax.set_title(env)
        ax.set_ylabel("mean return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(rows: list[dict[str, Any]], curves: dict[str, list[tuple[np.ndarray, np.ndarray]]],
                         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({r["env"] for r in rows} | set(curves))
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(len(envs), 2, figsize=(11, 3.5 * len(envs)), squeeze=False)
    for (left, right), env in zip(axes, envs, strict=True):
        by_group: dict[tuple[str, Any], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            if row["env"] == env and row["kind"] == "agent":
                by_group[(row["agent"], row["level"])][int(row["episode"])].append(float(row["return"]))
        for (agent, level), per_episode in sorted(by_group.items(), key=str):
            episodes = sorted(per_episode)
            left.plot([e + 1 for e in episodes], [np.mean(per_episode[e]) for e in episodes], marker="o",
                      label=f"{agent} L{level}")
        left.xaxis.set_major_locator(MaxNLocator(integer=True))  # episodes are whole numbers
        left.set_title(f"{env}: language agents")
        left.set_xlabel("episode")
        left.set_ylabel("return (mean over seeds)")
        if by_group:
            left.legend(fontsize=7)
        for steps, returns in curves.get(env, []):
            right.plot(steps, returns, alpha=0.8)
        right.set_title(f"{env}: PPO training")
        right.set_xlabel("environment steps")
        right.set_ylabel("episode return")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result_paths: list[str | Path], out_dir: str | Path) -> list[ReportRow]:
    """Write ``report.md``, ``report.csv``, ``scores.png`` and ``learning_curves.png`` into ``out_dir``."""
    paths = [Path(p) for p in result_paths]
    rows = load_episodes(paths)
    if not rows:
        raise ValueError(f"no episodes found under {', '.join(map(str, paths))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = summarize(rows)
    with (out / "report.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(report[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in report)
    table = markdown_table(report)
    (out / "report.md").write_text(
        "# TextGym report\n\nNormalized score: (return - random) / (PPO - random) on the same env; "
        "n/a where an anchor is missing. CI: 95% t-interval over seeds.\n\n" + table + "\n"
    )
    plot_scores(report, out / "scores.png")
    plot_learning_curves(rows, _learning_curves(paths), out / "learning_curves.png")
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
def _hydra_main(cfg: DictConfig) -> None:
    out_dir = cfg.out_dir or HydraConfig.get().runtime.output_dir
    write_report(list(cfg.results), out_dir)
    print((Path(out_dir) / "report.md").read_text())  # the table is the command's output
    logger.info("report written to %s", out_dir)


@functools.wraps(_hydra_main)
def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
