"""textgym-compare end to end on a tiny budget: PPO, random, a language agent, the report; then resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.compare import estimate_time, main
from experiments.records.results import iter_jsonl
from experiments.records.transcripts import load_calls
from tests.experiments.conftest import compose_config


def test_compare_runs_everything_and_resumes(fake_llm, tmp_path: Path, capsys) -> None:
    results = tmp_path / "cmp"
    # Per env: CartPole capped at 8 steps with the comparison's 2 episodes a stream, Blackjack 1 hand a stream, PPO
    # on the tiny global budget; PPO and random play 3 episodes a seed (anchor_episodes), on the same caps.
    args = ["envs=[cartpole,blackjack]", "levels=[1,5]", "agents=[naive,exe]", "seeds=[0,1]", "episodes=2",
            "per_env={cartpole:{max_steps:8,ppo_overrides:[]},blackjack:{max_steps:8,episodes:1,ppo_overrides:[]}}",
            "anchor_episodes=3",
            "ppo_overrides=['ppo.n_timesteps=512','ppo.n_envs=1','ppo.model.n_steps=256']",
            "llm=server", f"llm.base_url={fake_llm.base_url}", "llm.model=scripted", "logger=none",
            f"llm.cache_path={tmp_path / 'cache.sqlite'}", f"results_dir={results}", "progress=false"]
    main(args)
    out = capsys.readouterr().out
    # The estimate comes first: 16 streams; CartPole 8 x 2 x 8 steps, Blackjack 8 x 1 x 8.
    assert out.startswith("textgym-compare: 16 language-agent streams, at most 192 decisions: estimated at most ")
    for row in ("| cartpole | 1 | naive |", "| cartpole | 5 | exe |", "| blackjack | 5 | naive |",
                "| cartpole | - | ppo |", "| blackjack | 1 | random |"):
        assert row in out, row
    eval_dirs = sorted(p.parent.name for p in (results / "eval").rglob("episodes.jsonl"))
    assert len(eval_dirs) == 2 + 2 * 2 * 2
    for episodes in (results / "eval").rglob("episodes.jsonl"):
        rows = list(iter_jsonl(episodes))
        env, agent = rows[0]["env"], rows[0]["agent"]
        expected = 2 * 3 if agent == "random" else 2 * (2 if env == "cartpole" else 1)
        assert len(rows) == expected and all(r["steps"] <= 8 for r in rows), episodes
    for env in ("cartpole", "blackjack"):
        ppo_rows = list(iter_jsonl(results / "ppo" / f"{env}-s0" / "episodes.jsonl"))
        assert len(ppo_rows) == 2 * 3 and all(r["steps"] <= 8 and r["train_seed"] == 0 for r in ppo_rows)
    # The agents are told the step limit they play under (the per-env cap), not the env's own 500.
    system = load_calls(results / "eval" / "cartpole-L1-naive", 0, 0)[0]["request"]["messages"][0]["content"]
    assert "or after the step limit of 8 steps." in system
    for name in ("report.md", "report.csv", "scores.png", "learning_curves.png"):
        assert (results / "report" / name).exists()
    calls = len(fake_llm.requests)
    main(args)  # everything is done: nothing reruns
    assert len(fake_llm.requests) == calls


def test_the_main_job_is_bounded_by_design() -> None:
    estimate = estimate_time(compose_config("compare", []))
    # The README's main job: 6 minutes at most on a slow day on 2 cores, the language agents' part included.
    assert estimate.total_s <= 6 * 60
    assert estimate.streams == 8 and estimate.decisions == 2 * 2 * 50 + 2 * 2 * 4 * 6
    # Without the demo's caps CartPole alone could take 500 decisions a stream: the estimate says so.
    assert estimate_time(compose_config("compare", ["per_env=null"])).total_s > 20 * 60


@pytest.mark.parametrize(("override", "message"), [
    ("+per_env.cartpole.max_step=3", "per_env.cartpole.max_step is not a per-env setting: expected max_steps, "
                                     "episodes, ppo_overrides"),
    ("anchor_episodes=0", "anchor_episodes must be an int >= 1"),
])
def test_bad_compare_settings_exit_2_in_one_line(override: str, message: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([override, f"results_dir={tmp_path}", "logger=none"])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
