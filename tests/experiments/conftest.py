"""Helpers for runner tests: compose the real Hydra config, run the real CLIs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from experiments.config import register_resolvers

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
REPO_ROOT = Path(__file__).resolve().parents[2]
# What may differ between two runs of the same episodes: how long things took, and what the server's prompt cache
# held, which depends on the order concurrent streams (or a launcher's jobs) reached it. Nothing else may.
TIMING_FIELDS = ("wall_time_s", "llm_latency_s", "latency_s", "cached_prompt_tokens")


def untimed(rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Episode or step rows by (seed, episode, step), without :data:`TIMING_FIELDS`: what two runs must agree on."""
    return {(r["seed"], r["episode"], r.get("step")): {k: v for k, v in r.items() if k not in TIMING_FIELDS}
            for r in rows}


def default_sigint() -> None:
    """``preexec_fn`` for children a test will Ctrl-C: a shell without job control starts background jobs with
    SIGINT ignored, and Python then installs no KeyboardInterrupt handler, so the signal would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=False)


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <module> args`` as users would run the console script."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    result = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture
def fake_llm_overrides(fake_llm, tmp_path):
    """Hydra overrides that point the runner at the scripted server, with a private cache."""
    return ["llm=server", f"llm.base_url={fake_llm.base_url}", "llm.model=scripted", "logger=none",
            f"llm.cache_path={tmp_path / 'cache.sqlite'}", "progress=false"]
