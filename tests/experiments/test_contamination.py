"""Issue 23's report part: the obfuscate override of the commands, the contamination view (plain vs obfuscated,
difference and 95% CI) and the cost view (what one normalized point costs), from hand-made result files with
known numbers, and from real runs of textgym-eval, textgym-play and textgym-compare obfuscate=both."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from experiments.compare import main as compare_main
from experiments.records.results import iter_jsonl, load_episodes
from experiments.records.transcripts import TEXTS_FILE
from experiments.reports.contamination import CONTAMINATION_CSV, CONTAMINATION_PNG, difference_ci95, write_contamination
from experiments.reports.costs import CPU_FILE, LANGUAGE_AGENTS, NO_POSITIVE_SCORE, cost_rows, record_cpu
from experiments.reports.report import write_report
from tests.experiments.conftest import REPO_ROOT, default_sigint, run_cli

GIVEAWAYS = ("pole", "cart")  # CartPole's: never in its obfuscated text


def _row(agent: str, seed: int, ret: float, obfuscation: int | None = None, env: str = "cartpole",
         level: int | None = 1, kind: str = "agent", episode: int = 0, tokens: tuple[int, int] = (0, 0),
         cost: float = 0.0, wall: float = 0.1, env_steps: int | None = None) -> dict:
    return {"schema_version": 4, "kind": kind, "env": env, "env_id": "TextGym-CartPole-v0", "level": level,
            "agent": agent, "llm_model": "m" if kind == "agent" and agent != "random" else None, "seed": seed,
            "episode": episode, "status": "done", "return": ret, "steps": 10, "terminated": True,
            "invalid_actions": 0, "invalid_replies": 0, "llm_calls": 1, "cached_calls": 0,
            "prompt_tokens": tokens[0], "completion_tokens": tokens[1], "cached_prompt_tokens": 0, "cost_usd": cost,
            "llm_latency_s": 0.0, "wall_time_s": wall, "env_steps_trained": env_steps,
            "train_seed": 0 if kind == "ppo" else None, "obfuscation_seed": obfuscation, "error": None, "notes": {}}


def _write(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


# ---- the difference and its interval, by hand ----------------------------------------------------------------------


def test_paired_difference_ci_by_hand() -> None:
    plain = {(0, 0): 10.0, (0, 1): 20.0, (1, 0): 30.0}
    obfuscated = {(0, 0): 8.0, (0, 1): 15.0, (1, 0): 31.0}
    # Pair differences -2, -5, +1: mean -2, sd 3, half-width t(0.975, 2) * 3 / sqrt(3) = 7.4524.
    difference, low, high, method = difference_ci95(plain, obfuscated)
    assert difference == pytest.approx(-2.0)
    assert (low, high) == pytest.approx((-2 - 7.452413, -2 + 7.452413))
    assert method == "paired t (3 pairs)"


def test_welch_difference_ci_by_hand_when_episodes_do_not_pair() -> None:
    plain = {(0, 0): 1.0, (1, 0): 3.0}
    obfuscated = {(0, 0): 2.0, (1, 0): 4.0, (2, 0): 9.0}
    # Means 2 and 5; variances of the means 2/2 = 1 and 13/3; Welch dof 2.738; half-width 7.7639.
    difference, low, high, method = difference_ci95(plain, obfuscated)
    assert difference == pytest.approx(3.0)
    assert (low, high) == pytest.approx((3 - 7.763935, 3 + 7.763935))
    assert method == "Welch t"
    assert math.isnan(difference_ci95({(0, 0): 1.0}, {(0, 0): 2.0})[1])  # one pair: no interval


# ---- the report's contamination view from hand-made files ---------------------------------------------------------


def test_report_sets_plain_and_obfuscated_side_by_side(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _write(runs / "naive", [_row("naive", 0, 10, episode=0), _row("naive", 0, 20, episode=1),
                            _row("naive", 1, 30, episode=0)])
    _write(runs / "naive-obf0", [_row("naive", 0, 8, 0, episode=0), _row("naive", 0, 15, 0, episode=1),
                                 _row("naive", 1, 31, 0, episode=0)])
    _write(runs / "random", [_row("random", 0, 20), _row("random", 1, 20)])
    _write(runs / "ppo", [_row("ppo", 0, 60, level=None, kind="ppo"), _row("ppo", 1, 60, level=None, kind="ppo")])
    # Blackjack: a language agent on the plain text only, so its panel must say why it has no pair.
    _write(runs / "blackjack", [_row("naive", 0, -1, env="blackjack")])
    out = tmp_path / "out"
    report = write_report([runs], out)

    # The main table reports the variants apart (same env, level, agent, model and seeds).
    naive = [r for r in report if r.agent == "naive" and r.env == "cartpole"]  # means of seed means
    assert [(r.obfuscation_seed, r.mean_return) for r in naive] == [(None, pytest.approx(22.5)),
                                                                   (0, pytest.approx(21.25))]
    text = (out / "report.md").read_text()
    assert "| cartpole | 1 | naive (obfuscated) | m |" in text
    assert "## Contamination: plain vs obfuscated text" in text
    # Episode means ± t(0.975, 2) sd / sqrt(3): plain 20 ± 24.84, obfuscated 18 ± 29.29.
    assert "| cartpole | 1 | naive | m | obfuscated | 20.00 ± 24.84 | 3 | 18.00 ± 29.29 | 3 | -2.00 " \
           "| [-9.45, 5.45] | paired t (3 pairs) |" in text
    with (out / CONTAMINATION_CSV).open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["env"] == "cartpole" and row["obfuscation_seed"] == "0" and row["ci_method"] == "paired t (3 pairs)"
    assert float(row["difference"]) == pytest.approx(-2.0)
    assert float(row["difference_ci_low"]) == pytest.approx(-9.452413)
    assert (out / CONTAMINATION_PNG).stat().st_size > 5_000

    from experiments.reports.contamination import contamination_figure, contamination_rows

    figure = contamination_figure(contamination_rows(load_episodes([runs])), ["blackjack", "cartpole"])
    blackjack, cartpole = figure.axes
    assert "no plain/obfuscated pair on blackjack" in " ".join(t.get_text() for t in blackjack.texts)
    assert len(cartpole.lines) >= 3 and {t.get_text() for t in cartpole.get_legend().get_texts()} == {
        "plain", "obfuscated"}


def test_report_without_obfuscated_runs_says_how_to_get_them(tmp_path: Path) -> None:
    runs = _write(tmp_path / "runs", [_row("naive", 0, 5), _row("random", 0, 1)])
    out = tmp_path / "out"
    write_report([runs], out)
    assert "No comparison: no obfuscated runs" in (out / "report.md").read_text()
    table, _ = write_contamination(load_episodes([runs]), tmp_path)
    assert table == [] and (tmp_path / CONTAMINATION_PNG).exists()


# ---- the cost view from known rows ---------------------------------------------------------------------------------


def test_cost_of_one_normalized_point(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # naive plain: returns 30, 50 (mean 40); random 20; PPO 60 -> normalized (40 - 20) / (60 - 20) = 0.5.
    _write(runs / "eval" / "naive", [_row("naive", 0, 30, tokens=(100, 10), cost=0.01, wall=2.0),
                                     _row("naive", 1, 50, tokens=(300, 30), cost=0.03, wall=4.0)])
    # naive obfuscated: mean 10 -> normalized -0.25: no point to divide by.
    _write(runs / "eval" / "naive-obf0", [_row("naive", 0, 10, 0, wall=1.0), _row("naive", 1, 10, 0, wall=1.0)])
    _write(runs / "eval" / "random", [_row("random", 0, 20), _row("random", 1, 20)])
    _write(runs / "ppo", [_row("ppo", s, 60, level=None, kind="ppo", env_steps=5000) for s in (0, 1)])
    # 12 CPU-s of language agents, shared by wall time: plain 6 of 8 s (9 CPU-s), obfuscated 2 of 8 (3 CPU-s).
    record_cpu(runs / "eval", LANGUAGE_AGENTS, 5.0, 4.0)
    record_cpu(runs / "eval", LANGUAGE_AGENTS, 7.0, 4.0)  # a resumed run adds its share
    assert json.loads((runs / "eval" / CPU_FILE).read_text())[LANGUAGE_AGENTS] == {"cpu_s": 12.0, "wall_s": 8.0}
    record_cpu(runs / "ppo", "training", 30.0, 20.0)
    record_cpu(runs / "ppo", "evaluation", 2.0, 1.0)

    out = tmp_path / "out"
    report = write_report([runs], out)
    costs = {(c.agent, c.variant): c for c in cost_rows(report, load_episodes([runs]), [runs])}
    plain = costs[("naive", "plain")]
    assert plain.normalized_score == pytest.approx(0.5)
    assert (plain.tokens_per_episode, plain.usd_per_episode, plain.wall_s_per_episode, plain.cpu_s_per_episode) \
        == pytest.approx((220.0, 0.02, 3.0, 4.5))
    assert (plain.tokens_per_point, plain.usd_per_point, plain.wall_s_per_point, plain.cpu_s_per_point) \
        == pytest.approx((440.0, 0.04, 6.0, 9.0))
    obfuscated = costs[("naive", "obfuscated")]
    assert obfuscated.cpu_s_per_episode == pytest.approx(1.5) and math.isnan(obfuscated.tokens_per_point)
    ppo = costs[("ppo", "plain")]
    assert ppo.normalized_score == pytest.approx(1.0) and ppo.ppo_env_steps == 5000
    assert (ppo.ppo_train_cpu_s, ppo.cpu_s_per_episode, ppo.cpu_s_per_point, ppo.wall_s_per_point) \
        == pytest.approx((30.0, 1.0, 31.0, 20.1))
    assert math.isnan(costs[("random", "plain")].cpu_s_per_point)

    text = (out / "report.md").read_text()
    assert "## Cost: what one normalized point costs" in text
    assert "| cartpole | 1 | naive | m | plain | 0.50 | 220 | 0.0200 | 3.00 | 4.50 | 440 | 0.0400 | 6.00 | 9.00 | - |" \
        in text
    assert f"| cartpole | 1 | naive | m | obfuscated | -0.25 | 0 | 0.0000 | 1.00 | 1.50 | {NO_POSITIVE_SCORE} " in text
    assert "| 5,000 env steps, 30.0 CPU s, 20.0 wall s |" in text
    with (out / "costs.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_cpu_seconds_not_recorded_are_said_so(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _write(runs, [_row("naive", 0, 30), _row("random", 0, 20), _row("ppo", 0, 60, level=None, kind="ppo")])
    out = tmp_path / "out"
    write_report([runs], out)
    # (30 - 20) / (60 - 20) = 0.25: 0.1 wall-s an episode is 0.4 a point; CPU-seconds were not recorded.
    assert "| 0.25 | 0 | 0.0000 | 0.10 | n/a (not recorded) | 0 | 0.0000 | 0.40 | n/a (not recorded) | - |" in \
        (out / "report.md").read_text()


# ---- the override in the commands ----------------------------------------------------------------------------------


def test_eval_obfuscate_override_names_its_run_dir_and_rows(tmp_path: Path) -> None:
    args = ["experiments.run_agent", "env=cartpole", "agent=random", "seeds=[0,1]", "max_steps=5", "logger=none",
            f"results_dir={tmp_path}", "progress=false"]
    run_cli([*args, "obfuscate=true", "obfuscation_seed=3"], cwd=REPO_ROOT)
    run_cli(args, cwd=REPO_ROOT)
    obfuscated = list(iter_jsonl(tmp_path / "eval" / "cartpole-L1-random-obf3" / "episodes.jsonl"))
    plain = list(iter_jsonl(tmp_path / "eval" / "cartpole-L1-random" / "episodes.jsonl"))
    assert [r["obfuscation_seed"] for r in obfuscated] == [3, 3] and [r["obfuscation_seed"] for r in plain] == [
        None, None]
    # Read together they stay two variants of the same seeds, not one episode each.
    assert len(load_episodes([tmp_path / "eval"])) == 4
    # A plain run never resumes into an obfuscated run dir.
    refused = run_cli([*args, f"hydra.run.dir={tmp_path / 'eval' / 'cartpole-L1-random-obf3'}"], cwd=REPO_ROOT,
                      check=False)
    assert refused.returncode != 0 and "obfuscat" in refused.stderr + refused.stdout
    bad = run_cli([*args, "obfuscate=maybe"], cwd=REPO_ROOT, check=False)
    assert bad.returncode == 2 and "obfuscate must be true or false, got 'maybe'" in bad.stderr


def test_play_obfuscate_override_shows_the_obfuscated_text(tmp_path: Path) -> None:
    play = Path(sys.executable).with_name("textgym-play")
    child = pexpect.spawn(str(play), ["env=cartpole", "level=1", "max_steps=2", "seed=0", "obfuscate=true",
                                      f"results_dir={tmp_path}"],
                          env={**os.environ, "WANDB_MODE": "disabled"}, encoding="utf-8", timeout=60,
                          dimensions=(50, 200), preexec_fn=default_sigint)
    child.expect_exact("Episode 1 of 1")  # after the banner, which names the env and run dir the person chose
    child.expect_exact("action> ")
    screen = child.before.lower()  # the briefing and the first observation
    assert "goal" in screen and "actions:" in screen and not any(word in screen for word in GIVEAWAYS)
    child.sendline("1")
    child.expect_exact("action> ")
    child.sendline("1")
    child.expect(pexpect.EOF)
    (row,) = iter_jsonl(tmp_path / "eval" / "cartpole-L1-human-obf0" / "episodes.jsonl")
    assert row["obfuscation_seed"] == 0 and row["steps"] == 2


# ---- textgym-compare obfuscate=both, end to end ------------------------------------------------------------------


def test_compare_obfuscate_both_plays_both_variants_on_the_same_seeds(fake_llm, tmp_path: Path, capsys) -> None:
    results = tmp_path / "cmp"
    compare_main(["envs=[cartpole]", "levels=[1]", "agents=[naive]", "seeds=[0,1]", "episodes=1", "per_env=null",
                  "max_steps=4", "anchor_episodes=2", "obfuscate=both",
                  "ppo_overrides=['ppo.n_timesteps=256','ppo.n_envs=1','ppo.model.n_steps=128']",
                  "llm=server", f"llm.base_url={fake_llm.base_url}", "llm.model=scripted", "logger=none",
                  f"llm.cache_path={tmp_path / 'cache.sqlite'}", f"results_dir={results}", "progress=false",
                  "viewer_frames=none"])
    out = capsys.readouterr().out
    assert out.startswith("textgym-compare: 4 language-agent streams, at most 16 decisions")  # 2 variants x 2 seeds
    plain = list(iter_jsonl(results / "eval" / "cartpole-L1-naive" / "episodes.jsonl"))
    obfuscated = list(iter_jsonl(results / "eval" / "cartpole-L1-naive-obf0" / "episodes.jsonl"))
    assert sorted(r["seed"] for r in plain) == sorted(r["seed"] for r in obfuscated) == [0, 1]
    assert {r["obfuscation_seed"] for r in plain} == {None} and {r["obfuscation_seed"] for r in obfuscated} == {0}
    # The model read the task's name in the plain prompts only.
    def prompts(run: str) -> str:  # every text the agent sent or got (the rows' keys name the env, not the texts)
        return " ".join(line.get("text", "") for line in iter_jsonl(results / "eval" / run / TEXTS_FILE)).lower()

    assert "pole" in prompts("cartpole-L1-naive")
    assert not any(word in prompts("cartpole-L1-naive-obf0") for word in GIVEAWAYS)
    # PPO and random play once, on the plain task.
    assert sorted(p.name for p in (results / "eval").iterdir() if p.is_dir()) == [
        "cartpole-L1-naive", "cartpole-L1-naive-obf0", "cartpole-random"]
    report = (results / "report" / "report.md").read_text()
    assert "| cartpole | 1 | naive | scripted | obfuscated |" in report
    assert "paired t (2 pairs" in report  # the same seeds: every episode has its twin
    assert (results / "report" / CONTAMINATION_PNG).exists() and (results / "report" / "costs.csv").exists()
    # CPU-seconds were recorded for the language agents and for PPO's training and evaluation.
    assert json.loads((results / "eval" / CPU_FILE).read_text())[LANGUAGE_AGENTS]["cpu_s"] > 0
    assert set(json.loads((results / "ppo" / "cartpole-s0" / CPU_FILE).read_text())) == {"training", "evaluation"}
    (ppo_line,) = [line for line in report.splitlines() if line.startswith("| cartpole | - | ppo | - | plain |")]
    assert re.search(r"\| 256 env steps, \d+\.\d CPU s, \d+\.\d wall s \|$", ppo_line), ppo_line


def test_compare_rejects_a_bad_obfuscate(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        compare_main(["obfuscate=sometimes", f"results_dir={tmp_path}", "logger=none"])
    assert stopped.value.code == 2
    assert "obfuscate must be false, true or both, got 'sometimes'" in capsys.readouterr().err


def test_rollout_obfuscate_override_names_its_run_dir_rows_and_replays(fake_llm, tmp_path: Path) -> None:
    import io

    from experiments.reports.replay import parse_options
    from experiments.reports.replay import run as replay

    run_cli(["experiments.rollout", "env=cartpole", "level=1", "seeds=[0]", "n=2", "max_steps=3", "obfuscate=true",
             "llm=server", f"llm.base_url={fake_llm.base_url}", "llm.model=scripted", "progress=false",
             f"results_dir={tmp_path}"], cwd=REPO_ROOT)
    run_dir = tmp_path / "rollout" / "cartpole-L1-obf0"
    assert [r["obfuscation_seed"] for r in iter_jsonl(run_dir / "episodes.jsonl")] == [0, 0]
    out, err = io.StringIO(), io.StringIO()  # the run's env kwargs rebuild the obfuscated env, step for step
    assert replay(parse_options([str(run_dir)]), out=out, err=err) == 0, err.getvalue()
    assert "all 2 episodes match their recording" in out.getvalue()
