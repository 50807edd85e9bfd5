"""The report's contamination view: each language agent's score on the plain and the obfuscated text, side by side.

A model may score well on a task because it has read about it, not because it reasons from the text. The
obfuscated variant (``textgym/obfuscation.py``, ``textgym-compare obfuscate=both``) is the same decision problem
in invented names and mapped numbers; a score that drops there came partly from what the model knew of the task.

Per env x level x agent x model and obfuscation seed: the mean return on each variant, their difference
(obfuscated - plain) and its 95% confidence interval, computed over *episodes*:

- **paired t** where every episode of one variant has its twin on the other (same stream seed and episode index,
  hence the same reset seed: ``textgym-compare obfuscate=both`` plays them so): the t-interval of the per-pair
  differences, which removes the start state's share of the variance;
- **Welch t** otherwise (two independent samples with unequal variances, Welch-Satterthwaite degrees of freedom).

Episodes of one L3 stream are not independent (the agent carries what it learned), so there the interval is
narrower than it should be; the report says so. Fewer than two episodes (or pairs) on either side: no interval.

Written as a ``## Contamination`` section of ``report.md``, ``contamination.csv`` and ``contamination.png``
(per env: each group's plain and obfuscated mean with its 95% t-interval as whiskers, the difference and its interval
written above; a panel with nothing to draw says why).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from experiments.reports.intervals import mean_ci95
from experiments.variants import variant_name

__all__ = ["ContaminationRow", "contamination_rows", "difference_ci95", "contamination_markdown",
           "write_contamination", "CONTAMINATION_CSV", "CONTAMINATION_PNG", "ANCHOR_AGENTS",
           "reads_text"]

CONTAMINATION_CSV = "contamination.csv"
CONTAMINATION_PNG = "contamination.png"
ANCHOR_AGENTS = ("random", "ppo")
"""Contenders that never read the text: the same on either variant, so not in this view."""


def reads_text(row: dict[str, Any]) -> bool:
    """Whether the episode ``row`` was played by a language agent (not an anchor: random, PPO)."""
    return row["agent"] not in ANCHOR_AGENTS and row.get("kind") != "ppo"

PAIRED, WELCH = "paired t", "Welch t"
NO_OBFUSCATED_RUNS = ("no obfuscated runs: run the language agents on the obfuscated variant too\n"
                      "(textgym-compare obfuscate=both, or textgym-eval obfuscate=true)")


@dataclass
class ContaminationRow:
    """One language agent's plain and obfuscated scores on one env and level."""

    env: str
    level: int | None
    agent: str
    llm_model: str
    obfuscation_seed: int
    plain_mean: float
    plain_ci95: float
    plain_episodes: int
    obfuscated_mean: float
    obfuscated_ci95: float
    obfuscated_episodes: int
    difference: float
    """obfuscated - plain (negative: the agent does worse on the unfamiliar text)."""
    difference_ci_low: float
    difference_ci_high: float
    ci_method: str
    """``"paired t"`` (n pairs), ``"Welch t"``, or why there is no interval."""


def difference_ci95(plain: dict[tuple[int, int], float], obfuscated: dict[tuple[int, int], float]
                    ) -> tuple[float, float, float, str]:
    """Mean difference (obfuscated - plain) of two variants' episode returns and its 95% interval.

    Args:
        plain: return by (seed, episode) on the plain text.
        obfuscated: return by (seed, episode) on the obfuscated text.

    Returns:
        (difference, low, high, method): paired t over the per-episode differences when both hold the same
        (seed, episode) keys, else Welch t; low/high are NaN with fewer than two episodes (or pairs) a side.
    """
    a = np.array(list(plain.values()), dtype=float)
    b = np.array(list(obfuscated.values()), dtype=float)
    difference = float(b.mean() - a.mean()) if a.size and b.size else math.nan
    if set(plain) == set(obfuscated):
        pairs = np.array([obfuscated[key] - plain[key] for key in sorted(plain)], dtype=float)
        if pairs.size < 2:
            return difference, math.nan, math.nan, "none (fewer than 2 pairs)"
        if np.all(pairs == pairs[0]):  # every pair differs by the same amount: no spread to estimate
            return difference, difference, difference, f"{PAIRED} ({pairs.size} pairs, all equal)"
        _, half = mean_ci95(pairs)
        return difference, difference - half, difference + half, f"{PAIRED} ({pairs.size} pairs)"
    if a.size < 2 or b.size < 2:
        return difference, math.nan, math.nan, "none (fewer than 2 episodes a side)"
    var_a, var_b = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if var_a + var_b == 0:
        return difference, difference, difference, f"{WELCH} (no spread)"
    dof = (var_a + var_b) ** 2 / (var_a ** 2 / (a.size - 1) + var_b ** 2 / (b.size - 1))
    half = float(stats.t.ppf(0.975, dof) * math.sqrt(var_a + var_b))
    return difference, difference - half, difference + half, WELCH


def contamination_rows(rows: list[dict[str, Any]]) -> list[ContaminationRow]:
    """Pair each language agent's obfuscated episodes with its plain ones (finished episodes of ``rows`` only).

    Groups with no obfuscated (or no plain) episode have no row.
    """
    returns: dict[tuple[str, Any, str, str], dict[int | None, dict[tuple[int, int], float]]] = defaultdict(
        lambda: defaultdict(dict))
    for row in rows:
        if row.get("status", "done") != "done" or not reads_text(row):
            continue
        group = (row["env"], row["level"], row["agent"], row.get("llm_model") or "-")
        returns[group][row.get("obfuscation_seed")][(int(row["seed"]), int(row["episode"]))] = float(row["return"])
    result = []
    for (env, level, agent, model), variants in sorted(returns.items(), key=lambda item: (
            item[0][0], item[0][1] or 0, item[0][2], item[0][3])):
        plain = variants.get(None)
        if not plain:
            continue
        for seed in sorted(s for s in variants if s is not None):
            obfuscated = variants[seed]
            difference, low, high, method = difference_ci95(plain, obfuscated)
            a, b = np.array(list(plain.values())), np.array(list(obfuscated.values()))
            result.append(ContaminationRow(
                env=env, level=level, agent=agent, llm_model=model, obfuscation_seed=seed,
                plain_mean=float(a.mean()), plain_ci95=mean_ci95(a)[1], plain_episodes=int(a.size),
                obfuscated_mean=float(b.mean()), obfuscated_ci95=mean_ci95(b)[1], obfuscated_episodes=int(b.size),
                difference=difference, difference_ci_low=low, difference_ci_high=high, ci_method=method))
    return result


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _interval(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{_fmt(low)}, {_fmt(high)}]"


def _with_ci(mean: float, half: float) -> str:
    return _fmt(mean) + ("" if math.isnan(half) else f" ± {_fmt(half)}")


def contamination_markdown(table: list[ContaminationRow], any_obfuscated: bool) -> str:
    """The ``## Contamination`` section of ``report.md``: the table, or why there is none."""
    head = ("## Contamination: plain vs obfuscated text\n\n"
            "The same decision problem in invented names and mapped numbers (`obfuscate=true`): a score that drops "
            "on the obfuscated text came partly from what the model knew of the task. Difference = obfuscated - "
            "plain mean return; 95% CI over episodes: paired t where every episode has its twin (same seed and "
            "episode), else Welch t. L3 episodes of one stream are not independent, so their intervals are too "
            "narrow. PPO and random do not read the text: the same on either variant, not listed.\n\n")
    if not table:
        why = ("obfuscated episodes have no plain twin group (same env, level, agent and model)" if any_obfuscated
               else NO_OBFUSCATED_RUNS.replace("\n", " "))
        return head + f"No comparison: {why}.\n"
    lines = ["| env | level | agent | model | variant | plain (mean ± 95% CI) | episodes | obfuscated (mean ± 95% CI) "
             "| episodes | obfuscated - plain | 95% CI | CI method |", "|" + "---|" * 12]
    for r in table:
        ci = _interval(r.difference_ci_low, r.difference_ci_high)
        lines.append(f"| {r.env} | {r.level if r.level is not None else '-'} | {r.agent} | {r.llm_model} "
                     f"| {variant_name(r.obfuscation_seed)} | {_with_ci(r.plain_mean, r.plain_ci95)} "
                     f"| {r.plain_episodes} | {_with_ci(r.obfuscated_mean, r.obfuscated_ci95)} "
                     f"| {r.obfuscated_episodes} | {_fmt(r.difference)} | {ci} | {r.ci_method} |")
    return head + "\n".join(lines) + "\n"


def _whisker(half: float) -> float:
    return 0.0 if math.isnan(half) else half


def contamination_figure(table: list[ContaminationRow], envs: list[str]) -> Any:
    """Per env: each (level, agent) group's plain and obfuscated mean return with 95% t whiskers, joined by a line.

    ``envs``: the envs the report covers (a panel each; one without a pair says why). A matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = envs or sorted({r.env for r in table}) or ["(no runs)"]
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        ax.set_title(f"{env}: plain vs obfuscated")
        rows = [r for r in table if r.env == env]
        if not rows:
            ax.text(0.5, 0.5, NO_OBFUSCATED_RUNS if not table else f"no plain/obfuscated pair on {env}",
                    ha="center", va="center", fontsize=8, wrap=True, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        x = np.arange(len(rows))
        plain_y = [r.plain_mean for r in rows]
        obfuscated_y = [r.obfuscated_mean for r in rows]
        ax.errorbar(x - 0.1, plain_y, yerr=[_whisker(r.plain_ci95) for r in rows], fmt="o", capsize=4,
                    label="plain")
        ax.errorbar(x + 0.1, obfuscated_y, yerr=[_whisker(r.obfuscated_ci95) for r in rows], fmt="s", capsize=4,
                    label="obfuscated")
        for i, r in enumerate(rows):
            ax.plot([i - 0.1, i + 0.1], [r.plain_mean, r.obfuscated_mean], color="gray", linewidth=0.8)
            ci = _interval(r.difference_ci_low, r.difference_ci_high)
            label = f"diff {_fmt(r.difference)}" + ("" if ci == "n/a" else f"\n{ci}")
            ax.annotate(label, (i, max(r.plain_mean, r.obfuscated_mean)), textcoords="offset points",
                        xytext=(0, 12), ha="center", fontsize=7)
        labels = [f"L{r.level} {r.agent}" + ("" if r.obfuscation_seed == 0 else f"\nobf s{r.obfuscation_seed}")
                  for r in rows]
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylabel("mean return (95% CI over episodes)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_contamination(rows: list[dict[str, Any]], out_dir: Path) -> tuple[list[ContaminationRow], str]:
    """Write ``contamination.csv`` and ``contamination.png`` into ``out_dir``.

    Returns:
        The table and its markdown section (the caller puts it into ``report.md``).
    """
    import matplotlib.pyplot as plt

    table = contamination_rows(rows)
    with (out_dir / CONTAMINATION_CSV).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(ContaminationRow)])
        writer.writeheader()
        writer.writerows(asdict(r) for r in table)
    language_envs = sorted({r["env"] for r in rows if reads_text(r)})
    fig = contamination_figure(table, language_envs)
    fig.savefig(out_dir / CONTAMINATION_PNG, dpi=110)
    plt.close(fig)
    any_obfuscated = any(r.get("obfuscation_seed") is not None for r in rows)
    return table, contamination_markdown(table, any_obfuscated)
