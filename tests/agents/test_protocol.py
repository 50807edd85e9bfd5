"""The protocol switch (conf/protocol) and the agent presets, composed with the real Hydra configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.core.utils import setup_globals
from omegaconf import OmegaConf

from experiments.run_agent import evaluate
from experiments.running.episodes import episode_seed
from tests.agents.helpers import compose_eval, marking_responder

EXE_PRESETS = ["exe", "exe_no_insight", "exe_no_suggestion", "exe_no_summary", "exe_no_history"]


def test_textgym_protocol_is_the_default() -> None:
    cfg = compose_eval([])
    assert cfg.protocol.name == "textgym" and cfg.protocol.same_reset_seed is False
    assert (cfg.episodes, cfg.max_steps) == (1, None)
    assert episode_seed(2, 3) == 2003  # a fresh reset seed per episode


@pytest.mark.parametrize(("level", "trials"), [(1, 1), (2, 1), (3, 5), (4, 1), (5, 1)])
def test_paper_protocol_composes_the_original_design_for_eval(level: int, trials: int) -> None:
    cfg = compose_eval(["protocol=paper", f"level={level}", "agent=self_consistency"])
    assert cfg.protocol.name == "paper" and cfg.protocol.same_reset_seed is True
    assert (cfg.episodes, cfg.max_steps, cfg.llm.temperature) == (trials, 200, 0.0)
    assert (cfg.agent.temperature, cfg.agent.n, cfg.agent.history_window) == (0.7, 5, 10)
    assert compose_eval(["protocol=paper", "agent=exe"]).agent.history_window == 10
    assert compose_eval(["protocol=paper", f"level={level}", "episodes=3"]).episodes == 3  # explicit still wins
    assert episode_seed(2, 4, same_reset_seed=True) == episode_seed(2, 0) == 2000


def test_paper_protocol_composes_for_compare() -> None:
    cfg = compose_eval(["protocol=paper"], config_name="compare")
    assert (cfg.protocol.name, cfg.protocol.same_reset_seed, cfg.max_steps, cfg.llm.temperature) == (
        "paper", True, 200, 0.0)
    assert cfg.episodes is None  # no single level: each eval run resolves its own trials
    assert OmegaConf.to_container(cfg.protocol.episodes_per_level) == {"L1": 1, "L2": 1, "L3": 5, "L4": 1, "L5": 1}
    assert compose_eval([], config_name="compare").protocol.name == "textgym"


def test_five_trajectories_at_level2_and_4_by_default() -> None:
    import gymnasium as gym

    for level in (2, 4):
        _, info = gym.make("TextGym-CartPole-v0", level=level).reset(seed=0)
        assert len(info["knowledge"]["fewshot_examples"]) == 5


def test_ablation_presets_get_their_own_run_dirs() -> None:
    dirs = []
    for preset in EXE_PRESETS:
        cfg = compose_eval([f"agent={preset}", "env=cartpole", "level=3"], hydra_config=True)
        setup_globals()
        dirs.append(Path(cfg.hydra.run.dir).name)
        assert cfg.agent.get("name", "exe") == preset
    assert dirs == [f"cartpole-L3-{preset}" for preset in EXE_PRESETS]
    assert Path(compose_eval(["agent=naive"], hydra_config=True).hydra.run.dir).name == "cartpole-L1-naive"


def test_paper_protocol_runs_l3_trials_from_one_reset_seed(fake_llm, tmp_path: Path) -> None:
    fake_llm.responder = marking_responder
    cfg = compose_eval(["protocol=paper", "level=3", "agent=exe_no_history", "max_steps=3", "seeds=[1]",
                        "llm=server", f"llm.base_url={fake_llm.base_url}", "llm.model=scripted", "logger=none",
                        f"llm.cache_path={tmp_path / 'cache.sqlite'}", "progress=false"])
    run_dir = tmp_path / "run"
    evaluate(cfg, run_dir)
    rows = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows] == [0, 1, 2, 3, 4] and {r["agent"] for r in rows} == {"exe_no_history"}
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    first_observations = {s["observation"] for s in steps if s["step"] == 0}
    assert len(first_observations) == 1  # every trial starts from the stream's one reset seed
    assert rows[0]["notes"]["suggestion"] and rows[0]["notes"]["summary"]["text"].startswith("NOTE-")
