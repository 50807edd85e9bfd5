"""textgym-replay on real recorded runs: random and fake-server naive agents replay exactly; injected drift is
named and fails the command; GIF and MP4 frames are read back; bad input is one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from experiments.records.results import iter_jsonl
from experiments.reports.replay import RecordedRun, ReplayError, replay_episode, replay_run
from experiments.reports.replay import main as replay_main
from experiments.run_agent import evaluate
from experiments.run_ppo import run as run_ppo
from tests.experiments.conftest import compose_config, run_cli

CARTPOLE_FRAME = (400, 600, 3)


@pytest.fixture
def random_runs(tmp_path: Path) -> dict[str, Path]:
    """Random-agent runs: slippery FrozenLake (the env's own randomness) and Pendulum (continuous actions)."""
    root = tmp_path / "random"
    runs = {}
    for env, extra in (("frozenlake", ["level=2"]), ("pendulum", ["max_steps=12"])):
        runs[env] = root / env
        evaluate(compose_config("eval", [f"env={env}", "agent=random", "seeds=[0,1]", "episodes=2", "logger=none",
                                         "progress=false", *extra]), runs[env])
    return runs


@pytest.fixture
def naive_run(fake_llm, fake_llm_overrides, tmp_path: Path) -> Path:
    """A naive agent on CartPole at L3 against the scripted server (it pushes left every step)."""
    run_dir = tmp_path / "naive"
    evaluate(compose_config("eval", ["env=cartpole", "agent=naive", "level=3", "seeds=[0]", "episodes=2",
                                     "llm.cache=off", *fake_llm_overrides]), run_dir)
    return run_dir


def _rewrite_steps(run_dir: Path, edit) -> None:
    rows = list(iter_jsonl(run_dir / "steps.jsonl"))
    edit(rows)
    (run_dir / "steps.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _row(rows: list[dict], seed: int, episode: int, step: int) -> dict:
    return next(r for r in rows if (r["seed"], r["episode"], r["step"]) == (seed, episode, step))


def test_random_runs_replay_exactly(random_runs: dict[str, Path]) -> None:
    for env, run_dir in random_runs.items():
        results = list(replay_run(run_dir))
        episodes = list(iter_jsonl(run_dir / "episodes.jsonl"))
        assert len(results) == len(episodes) == 4
        for result, row in zip(results, episodes, strict=True):
            assert result.ok, f"{env}: {result.mismatch}"
            assert (result.key.seed, result.key.episode) == (row["seed"], row["episode"])
            assert result.reset_seed == row["seed"] * 1000 + row["episode"]
            assert result.steps == row["steps"] and result.episode_return == pytest.approx(row["return"])
            assert len(result.observations) == row["steps"] + 1 and not result.frames
    # The CLI agrees, one line per episode.
    out = run_cli(["experiments.reports.replay", str(random_runs["pendulum"])], cwd=random_runs["pendulum"])
    assert out.stdout.count("\nok ") + out.stdout.startswith("ok ") == 4
    assert "all 4 episodes match their recording" in out.stdout


def test_a_tree_of_run_dirs_is_replayed_and_ppo_is_named(random_runs: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for env, run_dir in random_runs.items():
        shutil.copytree(run_dir, root / "eval" / env)
    ppo_dir = root / "ppo" / "cartpole-s0"
    run_ppo(compose_config("ppo", ["env=cartpole", "seed=0", "ppo.n_timesteps=256", "eval_seeds=[0]",
                                   "eval_episodes=1", "logger=none", "progress=false"]), ppo_dir)
    out = run_cli(["experiments.reports.replay", str(root), "seed=1"], cwd=tmp_path)
    assert "all 4 episodes match their recording" in out.stdout
    assert f"skipped {ppo_dir} is a PPO run" in out.stdout and "nothing to replay" in out.stdout
    # Asked for directly, a PPO run is a one-line error.
    alone = run_cli(["experiments.reports.replay", str(ppo_dir)], cwd=tmp_path, check=False)
    assert alone.returncode == 2
    assert alone.stderr.strip().splitlines() == [
        f"textgym-replay: error: {ppo_dir} is a PPO run: PPO acts with numbers and its evaluation keeps no steps or "
        f"action texts, so there is nothing to replay (language-agent and random runs can be replayed)"]


def test_naive_run_replays_and_drift_is_named(naive_run: Path, tmp_path: Path) -> None:
    out = run_cli(["experiments.reports.replay", str(naive_run)], cwd=tmp_path)
    assert "all 2 episodes match their recording" in out.stdout and "seed 0 episode 1" in out.stdout

    drifted = tmp_path / "drifted"
    shutil.copytree(naive_run, drifted)

    def inject(rows: list[dict]) -> None:
        _row(rows, 0, 0, 3)["reward"] = 0.5
        _row(rows, 0, 1, 2)["observation"] = _row(rows, 0, 1, 2)["observation"].replace("The cart", "The kart", 1)

    _rewrite_steps(drifted, inject)
    out = run_cli(["experiments.reports.replay", str(drifted)], cwd=tmp_path, check=False)
    assert out.returncode == 1
    errors = out.stderr.strip().splitlines()
    assert errors[0] == (f"DRIFT {drifted}: cartpole L3 naive (scripted) seed 0 episode 0 (reset seed 0) "
                         f"step 3: reward recorded 0.5, replayed 1.0")
    assert errors[1].startswith(f"DRIFT {drifted}: cartpole L3 naive (scripted) seed 0 episode 1 (reset seed 1) "
                                f"step 2: observation differs from character 4: recorded 'The kart")
    assert errors[2] == "2 of 2 episodes drifted from their recording"
    # Selecting the untouched-but-for-one episode names only that one.
    only = run_cli(["experiments.reports.replay", str(drifted), "seed=0", "episode=1"], cwd=tmp_path, check=False)
    assert only.returncode == 1 and "episode 0" not in only.stderr and "step 2: observation" in only.stderr


def test_other_kinds_of_drift(random_runs: dict[str, Path], tmp_path: Path) -> None:
    run_dir = tmp_path / "lake"
    shutil.copytree(random_runs["frozenlake"], run_dir)
    rows = list(iter_jsonl(run_dir / "steps.jsonl"))
    first = [r for r in rows if (r["seed"], r["episode"]) == (0, 0)]
    assert len(first) >= 2
    recorded = RecordedRun.load(run_dir)

    # Another action text: the parsed action no longer matches at that very step.
    other = next(n for n in ("move left", "move down", "move right", "move up") if n != first[0]["action_text"])
    _rewrite_steps(run_dir, lambda rs: _row(rs, 0, 0, 0).update(action_text=other))
    mismatch = replay_episode(run_dir, 0, 0).mismatch
    assert mismatch is not None and (mismatch.step, mismatch.field) == (0, "action")
    assert mismatch.recorded == first[0]["action"] and mismatch.replayed == ["move left", "move down", "move right",
                                                                               "move up"].index(other)

    # A recording that stops before the episode ended.
    shutil.rmtree(run_dir)
    shutil.copytree(random_runs["frozenlake"], run_dir)
    last = len(first) - 1
    _rewrite_steps(run_dir, lambda rs: rs.remove(_row(rs, 0, 0, last)))
    mismatch = replay_episode(run_dir, 0, 0).mismatch
    assert mismatch is not None and mismatch.step is None and mismatch.field == "ended"
    # The loaded copy of the untouched run still replays cleanly: RecordedRun reads the files once.
    assert replay_episode(recorded, 0, 0).ok


def test_gif_and_mp4_frames(naive_run: Path, tmp_path: Path) -> None:
    result = replay_episode(naive_run, 0, 1, frames=True)
    assert result.ok and len(result.frames) == result.steps + 1 > 5
    assert all(frame.shape == CARTPOLE_FRAME and frame.dtype == np.uint8 for frame in result.frames)
    assert not np.array_equal(result.frames[0], result.frames[-1])  # the pole fell

    out = run_cli(["experiments.reports.replay", str(naive_run), "seed=0", "episode=1", "gif=true",
                   f"out_dir={tmp_path}"], cwd=tmp_path)
    gif = tmp_path / "cartpole__L3__naive__s0__ep1.gif"
    assert f"-> {gif} ({result.steps + 1} frames)" in out.stdout
    frames = iio.imread(gif, index=None)
    assert frames.shape == (result.steps + 1, *CARTPOLE_FRAME)
    assert iio.immeta(gif)["duration"] == 20  # CartPole renders at 50 fps
    # Read back, the frames are the replayed ones (GIF quantizes colours; CartPole's few colours survive).
    assert np.abs(frames[-1].astype(int) - result.frames[-1].astype(int)).mean() < 2

    video = tmp_path / "episode.mp4"
    run_cli(["experiments.reports.replay", str(naive_run), "seed=0", "episode=0", f"video={video}", "fps=25"],
            cwd=tmp_path)
    first = replay_episode(naive_run, 0, 0)
    movie = iio.imread(video, plugin="pyav")
    assert movie.shape == (first.steps + 1, *CARTPOLE_FRAME)


# Each printed as "textgym-replay: error: <message>", as every textgym-* command prints a config error.
@pytest.mark.parametrize(("args", "message"), [
    (["{missing}"], "no run dir at {missing}"),
    (["{run}", "seed=7"], "seed 7 is not in {run}: its seeds are [0]"),
    (["{run}", "seed=0", "episode=5"], "episode 5 of seed 0 is not in {run}: its episodes are [0, 1]"),
    (["{run}", "sed=0"], "unknown option 'sed': the options are run_dir, seed, episode, gif, video, "
                         "out_dir, fps"),
    (["{run}", "seed=zero"], "seed: Value 'zero' of type 'str' could not be converted to Integer"),
    (["{run}", "video=a.avi"], "video=a.avi: the file must end in .gif or .mp4"),
    (["{run}", "video=a.gif"], "video= writes one episode but 2 are selected: add seed=S episode=K "
                               "(or use gif=true for one GIF per episode)"),
    ([], "usage: textgym-replay RUN_DIR [seed=S] [episode=K] [gif=true] [video=PATH.gif|.mp4] "
         "[out_dir=DIR] [fps=N]"),
    (["{tmp}"], "{tmp} is not a run dir: it has neither run_identity.json nor .hydra/config.yaml"),
])
def test_bad_input_is_one_line(naive_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               args: list[str], message: str) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "episodes.jsonl").write_text("")
    names = {"run": naive_run, "missing": tmp_path / "nope", "tmp": empty}
    with pytest.raises(SystemExit) as stop:  # the console script's own entry point, in process (startup is slow)
        replay_main([a.format(**names) for a in args])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"textgym-replay: error: {message.format(**names)}"]


def test_replay_errors_in_the_api(naive_run: Path) -> None:
    with pytest.raises(ReplayError, match=r"seed 3 is not in .*: its seeds are \[0\]"):
        replay_episode(naive_run, 3, 0)


def test_failed_episodes_are_not_replayed(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    original, calls = fake_llm.responder, {"n": 0}

    def responder(request):
        calls["n"] += 1
        if calls["n"] > 3:  # the server breaks during the second episode of seed 0
            fake_llm.fail_next.extend([500] * 5)
        return original(request)

    fake_llm.responder = responder
    run_dir = tmp_path / "run"
    evaluate(compose_config("eval", ["env=cartpole", "agent=naive", "seeds=[0]", "episodes=2", "max_steps=3",
                                     "llm.cache=off", "llm.max_retries=1", *fake_llm_overrides]), run_dir)
    rows = list(iter_jsonl(run_dir / "episodes.jsonl"))
    assert [(r["episode"], r.get("status")) for r in rows] == [(0, "done"), (1, "failed")]
    assert [(r.key.episode, r.ok, r.steps) for r in replay_run(run_dir)] == [(0, True, 3)]
    with pytest.raises(ReplayError, match=r"episode 1 of seed 0 is not in .*: its episodes are \[0\]"):
        replay_episode(run_dir, 0, 1)
