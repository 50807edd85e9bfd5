"""The textgym-* commands at their edges, run as a user runs them: one-line config errors with exit 2 and "did you
mean", no run dir left by a run that could not start, --help texts that explain each command's own keys, and a
progress display that writes lines, not redraws, where its output is not a terminal."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from experiments.cli import unknown_choice
from experiments.run_agent import evaluate
from experiments.running.progress import RunProgress
from tests.experiments.conftest import compose_config, run_cli

EVAL, REPORT = "experiments.run_agent", "experiments.reports.report"
PPO, PLAY = "experiments.run_ppo", "experiments.play"


def _one_line_error(result, command: str) -> str:
    """The command's stderr, which must be exactly one ``<command>: error: ...`` line (no traceback)."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("[")]  # log lines
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def test_seeds_given_as_an_int_is_one_line_and_leaves_no_run_dir(tmp_path: Path) -> None:
    line = _one_line_error(run_cli([EVAL, "agent=random", "seeds=5"], tmp_path, check=False), "textgym-eval")
    assert "seeds must be a list, e.g. seeds=[5]" in line
    assert list(tmp_path.iterdir()) == []  # Hydra's run dir (with .hydra/ and the log) is gone again


def test_report_of_a_missing_path_is_one_line_and_leaves_no_dir(tmp_path: Path) -> None:
    result = run_cli([REPORT, "results=[no/such/dir]"], tmp_path, check=False)
    assert _one_line_error(result, "textgym-report") == "textgym-report: error: no results at no/such/dir"
    assert list(tmp_path.iterdir()) == []  # no ./runs/report/.hydra


@pytest.mark.parametrize(("module", "command", "override", "suggestion"), [
    (EVAL, "textgym-eval", "env=cartpol", "did you mean env=cartpole?"),
    (PPO, "textgym-ppo", "env=taxii", "did you mean env=taxi?"),
    (PLAY, "textgym-play", "env=frozen_lake", "did you mean env=frozenlake?"),
])
def test_an_unknown_group_option_says_did_you_mean(tmp_path: Path, module: str, command: str, override: str,
                                                   suggestion: str) -> None:
    line = _one_line_error(run_cli([module, override], tmp_path, check=False), command)
    assert suggestion in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("config", "overrides", "suggestion"), [
    ("eval", ["agent=exee"], "did you mean agent=exe?"),
    ("eval", ["level=2", "llm=locl"], "did you mean llm=local?"),
    ("eval", ["protocol=papr"], "did you mean protocol=paper?"),
    ("eval", ["logger=nnoe"], "did you mean logger=none?"),
    ("eval", ["-m", "env=cartpole,frozenlak"], "did you mean env=frozenlake?"),  # a sweep's choices too
    ("ppo", ["ppo=cartpoel"], "did you mean ppo=cartpole?"),
    ("compare", ["llm=opnai"], "did you mean llm=openai?"),
])
def test_every_group_of_every_command_is_checked(config: str, overrides: list[str], suggestion: str) -> None:
    assert suggestion in unknown_choice(config, overrides)


def test_known_options_and_other_keys_pass_the_check() -> None:
    assert unknown_choice("eval", ["env=taxi", "agent=exe", "seeds=[0,1]", "+env.kwargs.x=1", "hydra.verbose=true"]) \
        is None
    assert unknown_choice("report", ["env=whatever"]) is None  # not report's group: Hydra says what is wrong


def test_an_unknown_option_with_nothing_close_lists_the_options(tmp_path: Path) -> None:
    line = _one_line_error(run_cli([EVAL, "agent=foo"], tmp_path, check=False), "textgym-eval")
    assert line.startswith("textgym-eval: error: unknown agent 'foo': agent is one of ") and "naive" in line
    assert "did you mean" not in line


def test_eval_help_explains_its_keys_and_only_its_groups(tmp_path: Path) -> None:
    text = run_cli([EVAL, "--help"], tmp_path).stdout
    assert text.startswith("textgym-eval: ") and "powered by Hydra" not in text
    for key in ("workers=N", "shard=i/n", "protocol.same_reset_seed", "seeds=[0,1]", "concurrency=N"):
        assert key in text
    groups = text.split("== Groups")[1].split("== Keys")[0]
    assert "cartpole" in groups and "exe" in groups
    assert "\n  ppo " not in groups and "ppo:" not in text.split("== Config")[0]
    assert list(tmp_path.iterdir()) == []


def test_report_help_lists_no_groups_it_does_not_use(tmp_path: Path) -> None:
    text = run_cli([REPORT, "--help"], tmp_path).stdout
    assert text.startswith("textgym-report: ") and "results=[DIR,...]" in text
    assert "== Groups" not in text and "env:" not in text and "agent:" not in text


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_eval_that_cannot_reach_its_server_leaves_no_run_dir(tmp_path: Path) -> None:
    result = run_cli([EVAL, "agent=naive", "llm=server", f"llm.base_url=http://127.0.0.1:{_closed_port()}/v1",
                      "llm.model=x", f"results_dir={tmp_path / 'runs'}"], tmp_path, check=False)
    assert "no OpenAI-compatible server" in _one_line_error(result, "textgym-eval")
    assert not (tmp_path / "runs").exists()


def test_a_run_started_from_code_gets_its_config_in_dot_hydra(tmp_path: Path) -> None:
    # textgym-compare runs its evals from code, without a Hydra run of their own; their dirs get .hydra/ too.
    cfg = compose_config("eval", ["agent=random", "seeds=[0]", "logger=none", "progress=false"])
    outcome = evaluate(cfg, tmp_path / "run")
    saved = (tmp_path / "run" / ".hydra" / "config.yaml").read_text()
    assert outcome.ok and "name: cartpole" in saved and "agents.random" in saved


def test_eval_into_a_pipe_prints_a_line_per_episode_not_redraws(tmp_path: Path) -> None:
    result = run_cli([EVAL, "agent=random", "seeds=[0,1]", "episodes=2", "logger=none",
                      f"results_dir={tmp_path}"], tmp_path)
    output = result.stdout + result.stderr
    assert "\r" not in output
    episode_lines = [line for line in output.splitlines() if " episode " in line and line.startswith("episodes ")]
    assert len(episode_lines) == 4 and episode_lines[-1].startswith("episodes 4/4: cartpole L1 random")
    assert "episodes: 4/4 episodes" in output  # the closing summary line


def test_progress_lines_and_periodic_summaries_off_a_terminal() -> None:
    out = io.StringIO()
    progress = RunProgress(file=out, summary_every_s=0)  # a summary after every episode
    progress.add_group("taxi L1 naive", 2)
    progress.episode_finished("taxi L1 naive")
    progress.episode_finished("taxi L1 naive", failed=True)
    progress.close()
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "episodes 1/2: taxi L1 naive episode 1/2 done"
    assert lines[1].startswith("episodes: 1/2 episodes, 0s elapsed, about ")
    assert lines[2] == "episodes 2/2: taxi L1 naive episode 2/2 failed"
    assert lines[3].startswith("episodes: 2/2 episodes, 1 failed")
    assert len(lines) == 5  # the closing summary, once
