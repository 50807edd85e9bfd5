"""textgym-compare end to end on a tiny budget: PPO, random, a language agent, the report; then resume."""

from __future__ import annotations

from pathlib import Path

from experiments.compare import main
from experiments.results import iter_jsonl


def test_compare_runs_everything_and_resumes(fake_llm, tmp_path: Path, capsys) -> None:
    results = tmp_path / "cmp"
    args = ["envs=[cartpole,blackjack]", "levels=[1,5]", "agents=[naive,exe]", "seeds=[0,1]", "episodes=2",
            "max_steps=8", "ppo_overrides=['ppo.n_timesteps=512','ppo.n_envs=1','ppo.model.n_steps=256']",
            "llm=server", f"llm.base_url={fake_llm.base_url}", "llm.model=scripted", "logger=none",
            f"llm.cache_path={tmp_path / 'cache.sqlite'}", f"results_dir={results}", "progress=false"]
    main(args)
    table = capsys.readouterr().out
    for row in ("| cartpole | 1 | naive |", "| cartpole | 5 | exe |", "| blackjack | 5 | naive |",
                "| cartpole | - | ppo |", "| blackjack | 1 | random |"):
        assert row in table, row
    eval_dirs = sorted(p.parent.name for p in (results / "eval").rglob("episodes.jsonl"))
    assert len(eval_dirs) == 2 + 2 * 2 * 2
    for episodes in (results / "eval").rglob("episodes.jsonl"):
        rows = list(iter_jsonl(episodes))
        assert len(rows) == 4 and all(r["steps"] <= 8 for r in rows)
    ppo_rows = list(iter_jsonl(results / "ppo" / "cartpole-s0" / "episodes.jsonl"))
    assert len(ppo_rows) == 4 and all(r["steps"] <= 8 and r["train_seed"] == 0 for r in ppo_rows)
    for name in ("report.md", "report.csv", "scores.png", "learning_curves.png"):
        assert (results / "report" / name).exists()
    calls = len(fake_llm.requests)
    main(args)  # everything is done: nothing reruns
    assert len(fake_llm.requests) == calls
