"""Report numbers against hand-computed ones on a small fixture of episodes, and on real runs' result files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from experiments.records.results import iter_jsonl
from experiments.reports.intervals import mean_ci95
from experiments.reports.report import UNKNOWN_NEW_TOKENS_NOTE, write_report
from tests.experiments.conftest import REPO_ROOT, compose_config, run_cli
from tests.fake_llm_server import FakeLLMServer


def _row(agent: str, seed: int, episode: int, ret: float, level: int | None = 1, kind: str = "agent", steps: int = 10,
         invalid: int = 0, tokens: tuple[int, int] = (0, 0), cost: float = 0.0) -> dict:
    return {"schema_version": 2, "kind": kind, "env": "cartpole", "env_id": "TextGym-CartPole-v0", "level": level,
            "agent": agent, "llm_model": "m" if kind == "agent" and agent != "random" else None, "seed": seed,
            "episode": episode, "return": ret, "steps": steps, "terminated": True, "invalid_actions": invalid,
            "invalid_replies": invalid, "llm_calls": 1, "cached_calls": 0, "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1], "cost_usd": cost, "llm_latency_s": 0.0, "wall_time_s": 0.1,
            "env_steps_trained": None}


@pytest.fixture
def fixture_dirs(tmp_path: Path) -> list[Path]:
    rows = {
        "naive": [_row("naive", 0, 0, 10, invalid=2, tokens=(100, 10), cost=0.01),
                  _row("naive", 0, 1, 30, invalid=0, tokens=(300, 30), cost=0.03),
                  _row("naive", 1, 0, 50, invalid=3, tokens=(200, 20), cost=0.02),
                  _row("naive", 1, 1, 50, invalid=1, tokens=(200, 20), cost=0.02)],
        "random": [_row("random", 0, 0, 20), _row("random", 1, 0, 20)],
        "ppo": [_row("ppo", 0, 0, 500, level=None, kind="ppo"), _row("ppo", 1, 0, 480, level=None, kind="ppo")],
    }
    dirs = []
    for name, episodes in rows.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in episodes))
        dirs.append(folder)
    (tmp_path / "ppo" / "learning_curve.csv").write_text(
        "env_steps,episodes,return_mean\n0,0,20\n1000,50,200\n2000,60,490\n")
    return dirs


def test_report_numbers(fixture_dirs: list[Path], tmp_path: Path) -> None:
    report = {(r.agent, r.level): r for r in write_report(fixture_dirs, tmp_path / "out")}
    naive = report[("naive", 1)]
    # Seed means 20 and 50 -> mean 35; CI = t(0.975, 1) * std(ddof=1) / sqrt(2) = 12.706 * 21.213 / 1.414.
    assert naive.mean_return == pytest.approx(35.0)
    assert naive.ci95 == pytest.approx(12.7062 * math.sqrt(450) / math.sqrt(2), rel=1e-4)
    # random = 20, PPO = 490: (35 - 20) / (490 - 20).
    assert naive.normalized_score == pytest.approx(15 / 470)
    assert naive.invalid_action_rate == pytest.approx(6 / 40)
    assert naive.tokens_per_episode == pytest.approx((110 + 330 + 220 + 220) / 4)
    assert naive.cost_per_episode_usd == pytest.approx(0.02)
    assert report[("ppo", None)].normalized_score == pytest.approx(1.0)
    assert report[("random", 1)].normalized_score == pytest.approx(0.0)
    out = tmp_path / "out"
    with (out / "report.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 3
    table = (out / "report.md").read_text()
    # Last episode: seed 0 scored 30 and seed 1 50 in episode 2.
    assert naive.last_episode == 1 and naive.last_return == pytest.approx(40.0)
    # 800 prompt tokens over 40 steps; these rows (schema 2, no transcripts) never said what the server cached.
    assert naive.prompt_tokens_per_decision == pytest.approx(20.0) and naive.new_prompt_tokens_per_decision is None
    assert ("| cartpole | 1 | naive | m | 2 | 4 | 35.00 ± 190.59 | 40.00 (ep 2) | 0.03 | 15.0 | 220 | 20 | unknown "
            "| 0.0200 | 0 |" in table)
    assert "| cartpole | 1 | random | - | 2 | 2 | 20.00 ± 0.00 | - |" in table  # one episode per stream
    assert "| 0 | 0 | 0.0000 | 0 |" in table  # random and PPO send no prompt, so none of it is new
    assert UNKNOWN_NEW_TOKENS_NOTE in table
    assert "Failures" not in table
    for plot in ("scores.png", "learning_curves.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mean_ci95_edge_cases() -> None:
    assert math.isnan(mean_ci95([3.0])[1]) and mean_ci95([3.0])[0] == 3.0
    assert mean_ci95([1.0, 1.0, 1.0]) == (1.0, 0.0)


def test_report_cli(fixture_dirs: list[Path], tmp_path: Path) -> None:
    paths = ",".join(str(d) for d in fixture_dirs)
    result = run_cli(["experiments.reports.report", f"results=[{paths}]", f"out_dir={tmp_path / 'cli'}"], cwd=REPO_ROOT)
    assert "| cartpole | 1 | naive |" in result.stdout
    assert (tmp_path / "cli" / "report.md").exists()


def test_report_without_results_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no results at"):
        write_report([tmp_path / "missing"], tmp_path / "out")


def test_learning_curve_reads_the_return_column(fixture_dirs: list[Path]) -> None:
    from experiments.reports.report import _learning_curves

    steps, returns = _learning_curves(fixture_dirs)["cartpole"][0]
    assert list(steps) == [0, 1000, 2000] and list(returns) == [20, 200, 490]


def test_two_models_are_reported_apart(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    rows = [{**_row("naive", 0, 0, 10), "llm_model": "small"}, {**_row("naive", 0, 0, 30), "llm_model": "large"}]
    (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = {r.llm_model: r.mean_return for r in write_report([folder], tmp_path / "out")}
    assert report == {"small": 10.0, "large": 30.0}


def test_failed_episodes_are_counted_never_averaged(fixture_dirs: list[Path], tmp_path: Path) -> None:
    failed = {**_row("naive", 2, 0, 0.0), "schema_version": 3, "status": "failed", "return": None,
              "error": "LLMError: gave up after 4 attempts: HTTP 500"}
    retried = {**failed, "seed": 0, "episode": 1}  # failed once, then finished (the fixture's done row)
    with (fixture_dirs[0] / "episodes.jsonl").open("a") as handle:
        handle.write(json.dumps(failed) + "\n" + json.dumps(retried) + "\n")
    report = {(r.agent, r.level): r for r in write_report(fixture_dirs, tmp_path / "out")}
    naive = report[("naive", 1)]
    assert naive.mean_return == pytest.approx(35.0) and naive.episodes == 4 and naive.seeds == 2
    assert naive.failed == 1 and report[("random", 1)].failed == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Failures" in text
    assert "| cartpole | 1 | naive | m | 1 | LLMError: gave up after 4 attempts: HTTP 500 |" in text


def test_report_of_only_failures_still_writes(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    failed = {**_row("naive", 0, 0, 0.0), "status": "failed", "return": None, "error": "ValueError: boom"}
    (folder / "episodes.jsonl").write_text(json.dumps(failed) + "\n")
    [row] = write_report([folder], tmp_path / "out", failed_parts=[("ppo cartpole-s0", "RuntimeError: no GPU")])
    assert row.failed == 1 and row.episodes == 0 and math.isnan(row.mean_return)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| ppo cartpole-s0 | | | | all | RuntimeError: no GPU |" in text and "ValueError: boom" in text
    assert (tmp_path / "out" / "scores.png").read_bytes()[:4] == b"\x89PNG"


def _real_run(tmp_path: Path, name: str, cache_report: str | None, prefix_slots: int = 8) -> Path:
    """A real textgym-eval run (naive, 2 seeds, 2 episodes) against the scripted server's cache reporting."""
    from experiments.run_agent import evaluate

    run_dir = tmp_path / name
    with FakeLLMServer() as server:
        server.cache_report, server.prefix_slots = cache_report, prefix_slots
        cfg = compose_config("eval", [
            "agent=naive", "seeds=[0,1]", "episodes=2", "max_steps=6", "llm=server", f"llm.base_url={server.base_url}",
            "llm.model=scripted", "llm.cache=off", f"llm.cache_path={tmp_path / 'cache.sqlite'}", "logger=none",
            "progress=false"])
        outcome = evaluate(cfg, run_dir)
    assert outcome.done == 4
    return run_dir


def _calls_usage(run_dir: Path) -> tuple[int, int, int]:
    """Prompt and cached prompt tokens as the transcript recorded each call, and the steps the episodes played."""
    calls = list(iter_jsonl(run_dir / "calls.jsonl"))
    steps = sum(row["steps"] for row in iter_jsonl(run_dir / "episodes.jsonl"))
    prompt = sum(c["usage"]["prompt_tokens"] for c in calls)
    return prompt, sum(c["usage"]["cached_prompt_tokens"] or 0 for c in calls), steps


@pytest.mark.parametrize("cache_report", ["openai", "llama.cpp", "timings"])
def test_new_prompt_tokens_per_decision_of_a_real_run(tmp_path: Path, cache_report: str) -> None:
    run_dir = _real_run(tmp_path, "run", cache_report)
    prompt, cached, steps = _calls_usage(run_dir)
    [row] = write_report([run_dir], tmp_path / "out")
    assert 0 < cached < prompt  # each step re-sent the system prompt, which the server had cached
    assert row.prompt_tokens_per_decision == pytest.approx(prompt / steps)
    assert row.new_prompt_tokens_per_decision == pytest.approx((prompt - cached) / steps)
    assert row.new_prompt_tokens_per_decision < row.prompt_tokens_per_decision
    table = (tmp_path / "out" / "report.md").read_text()
    assert f"| {prompt / steps:.0f} | {(prompt - cached) / steps:.0f} | 0.0000 | 0 |" in table
    assert UNKNOWN_NEW_TOKENS_NOTE not in table
    with (tmp_path / "out" / "report.csv").open() as handle:
        [csv_row] = list(csv.DictReader(handle))
    assert float(csv_row["new_prompt_tokens_per_decision"]) == pytest.approx((prompt - cached) / steps)


def test_a_server_that_reports_no_cached_tokens_leaves_new_tokens_unknown(tmp_path: Path) -> None:
    run_dir = _real_run(tmp_path, "run", cache_report=None)
    prompt, _, steps = _calls_usage(run_dir)
    [row] = write_report([run_dir], tmp_path / "out")
    assert row.prompt_tokens_per_decision == pytest.approx(prompt / steps) and prompt > 0
    assert row.new_prompt_tokens_per_decision is None  # not "all new": nobody said
    table = (tmp_path / "out" / "report.md").read_text()
    assert f"| {prompt / steps:.0f} | unknown | 0.0000 | 0 |" in table and UNKNOWN_NEW_TOKENS_NOTE in table
    with (tmp_path / "out" / "report.csv").open() as handle:
        [csv_row] = list(csv.DictReader(handle))
    assert csv_row["new_prompt_tokens_per_decision"] == ""


def test_a_server_that_reports_zero_cached_tokens_counts_them_all_new(tmp_path: Path) -> None:
    # The server says "0 cached" every time (it remembers no prompt): the rows alone cannot tell that from
    # silence, the transcript can.
    run_dir = _real_run(tmp_path, "run", cache_report="openai", prefix_slots=0)
    prompt, cached, steps = _calls_usage(run_dir)
    [row] = write_report([run_dir], tmp_path / "out")
    assert cached == 0
    assert row.new_prompt_tokens_per_decision == pytest.approx(row.prompt_tokens_per_decision)
    assert row.new_prompt_tokens_per_decision == pytest.approx(prompt / steps)
    assert UNKNOWN_NEW_TOKENS_NOTE not in (tmp_path / "out" / "report.md").read_text()


def _write_runs(tmp_path: Path, rows: list[dict]) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir(exist_ok=True)
    (folder / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_anchors_that_tie_leave_the_normalized_score_undefined_and_say_so(tmp_path: Path) -> None:
    folder = _write_runs(tmp_path, [_row("naive", 0, 0, 0.0), _row("random", 0, 0, 0.0),
                                    _row("ppo", 0, 0, 0.0, level=None, kind="ppo")])
    report = {r.agent: r for r in write_report([folder], tmp_path / "out")}
    assert math.isnan(report["naive"].normalized_score)
    assert report["naive"].normalized_undefined == "PPO and random tie"
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| undefined: PPO and random tie |" in text
    assert "`undefined: PPO and random tie` where the two score the same" in text


def test_a_missing_anchor_is_named(tmp_path: Path) -> None:
    folder = _write_runs(tmp_path, [_row("naive", 0, 0, 5.0), _row("random", 0, 0, 1.0)])
    report = {r.agent: r for r in write_report([folder], tmp_path / "out")}
    assert report["naive"].normalized_undefined == "no PPO run"
    assert "| n/a (no PPO run) |" in (tmp_path / "out" / "report.md").read_text()


def _panel_texts(ax) -> str:
    return " ".join(text.get_text() for text in ax.texts)


def test_learning_curves_draw_only_l3_on_whole_episodes(fixture_dirs: list[Path]) -> None:
    from experiments.reports.report import _learning_curves, learning_curves_figure

    rows = [_row("naive", 0, 0, 10), _row("naive", 1, 0, 20),  # L1: independent trials, not a learning curve
            *(_row("naive", seed, k, 10 * k + seed, level=3) for seed in (0, 1) for k in range(3))]
    fig = learning_curves_figure(rows, _learning_curves(fixture_dirs))
    left, right = fig.axes
    assert [line.get_label() for line in left.lines] == ["naive L3"]
    assert list(left.lines[0].get_xdata()) == [1, 2, 3]
    assert list(left.lines[0].get_ydata()) == [0.5, 10.5, 20.5]
    assert left.get_xlim() == (0.5, 3.5)
    assert all(float(tick).is_integer() for tick in left.get_xticks() if 0.5 <= tick <= 3.5)
    assert len(right.lines) == 1 and not right.texts


def test_learning_curves_without_l3_or_ppo_say_why(tmp_path: Path) -> None:
    from experiments.reports.report import learning_curves_figure

    left, right = learning_curves_figure([_row("naive", 0, 0, 10), _row("naive", 1, 0, 20)], {}).axes
    assert not left.lines and "no L3 runs: language agents learn\nacross episodes only at L3" in _panel_texts(left)
    assert not right.lines and "no PPO training curve for cartpole" in _panel_texts(right)


def test_every_scores_panel_shows_bars_or_says_why(tmp_path: Path) -> None:
    from experiments.reports.report import scores_figure, summarize

    rows = [_row("naive", 0, 0, 30), _row("random", 0, 0, 20), _row("ppo", 0, 0, 50, level=None, kind="ppo"),
            {**_row("random", 0, 0, -0.4), "env": "blackjack"}]
    blackjack, cartpole = scores_figure(summarize(rows)).axes  # panels in env order
    assert [patch.get_height() for patch in cartpole.patches] == [30]
    anchors = sorted(line.get_label() for line in cartpole.lines if not line.get_label().startswith("_"))
    assert anchors == ["ppo 50.00", "random 20.00"]
    assert not blackjack.patches
    assert "no language-agent episode finished on blackjack" in _panel_texts(blackjack)


def test_a_huge_interval_of_few_seeds_does_not_flatten_the_panel() -> None:
    from experiments.reports.report import scores_figure, summarize

    # Two seeds of +1 and 0: a t-interval of +-6.35 on returns that lie in [-1, 1].
    rows = [{**_row("naive", seed, 0, ret), "env": "blackjack"} for seed, ret in ((0, 1.0), (1, 0.0))]
    rows += [{**_row("random", 0, 0, -0.4), "env": "blackjack"},
             {**_row("ppo", 0, 0, -0.1, level=None, kind="ppo"), "env": "blackjack"}]
    (panel,) = scores_figure(summarize(rows)).axes
    low, high = panel.get_ylim()
    assert -1.5 < low < -0.4 and 0.5 < high < 1.5
    assert panel.get_title() == "blackjack (95% CIs run off the panel)"
