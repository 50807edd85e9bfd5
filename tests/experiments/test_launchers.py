"""Hydra launchers beyond one process: the same sweep gives the same rows whichever launcher runs it.

joblib and submitit_local run on this machine as they ship; Ray runs twice, as a private Ray that the launcher
starts itself (``hydra/launcher=ray``) and as a cluster this test starts with ``ray start --head``
(``hydra/launcher=ray_cluster``). Everything Ray opens is bound to 127.0.0.1 and stopped at the end. The Slurm
preset cannot run here, so its composed submitit settings are checked instead (its real code path is
submitit_local's).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import OmegaConf

from experiments.records.results import iter_jsonl
from tests.experiments.conftest import REPO_ROOT, TIMING_FIELDS, run_cli

# Two envs x two levels x (no LLM, scripted LLM), two seeds of two episodes each: 8 sweep points.
SWEEP = ["-m", "env=cartpole,frozenlake", "level=1,5", "agent=random,naive", "seeds=[0,1]", "episodes=2",
         "max_steps=6", "llm.cache=off"]
RAY_START_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_temp_dir() -> Iterator[Path]:
    """Ray's session files for this module. A short path: Ray's unix socket names are capped near 107 characters."""
    temp_dir = Path(tempfile.mkdtemp(prefix="tgray", dir="/tmp"))
    yield temp_dir
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_env(ray_temp_dir: Path) -> dict[str, str]:
    """Environment of every Ray process here: servers on 127.0.0.1 only, and a token of this module only."""
    token_path = ray_temp_dir / "auth_token"
    token_path.write_text(secrets.token_hex(32))
    return {
        # On Linux Ray advertises the machine's outward address; this keeps every Ray server on the loopback.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # Ray's token authentication, which a joining job must also be told about; not ~/.ray/auth_token.
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


@pytest.fixture(scope="module")
def ray_head(ray_env: dict[str, str], ray_temp_dir: Path) -> Iterator[str]:
    """A one-node Ray cluster started with ``ray start --head`` on 127.0.0.1; yields its address."""
    port = _free_port()
    log_path = ray_temp_dir / "ray_head.log"
    ray_cli = Path(sys.executable).with_name("ray")
    with open(log_path, "w") as log:
        head = subprocess.Popen(
            [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--include-dashboard=false",
             "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={ray_temp_dir}"],
            env={**os.environ, **ray_env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + RAY_START_S
        while "Ray runtime started" not in log_path.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start --head did not come up:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        # `ray start --block` drains and stops its own processes on SIGTERM; its process group is the fallback.
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)


def _strip_schedule(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in TIMING_FIELDS}


def _row_order(row: dict[str, Any]) -> tuple[int, int, int]:
    return row["seed"], row["episode"], row.get("step", -1)


def sweep_results(results_dir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Episode and step rows of each sweep point under ``results_dir``, minus TIMING_FIELDS, in a stable order."""
    results = {}
    for episodes in sorted((results_dir / "sweep").rglob("episodes.jsonl")):
        point = episodes.parent
        results[point.name] = {
            name: sorted((_strip_schedule(row) for row in iter_jsonl(point / name)), key=_row_order)
            for name in ("episodes.jsonl", "steps.jsonl")
        }
    return results


def run_sweep(launcher_args: list[str], results_dir: Path, overrides: list[str], env: dict[str, str] | None = None,
              ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    run_cli(["experiments.run_agent", *SWEEP, *launcher_args, f"results_dir={results_dir}", *overrides],
            cwd=results_dir.parent, env=env, timeout=600)
    return sweep_results(results_dir)


def test_joblib_submitit_and_ray_give_identical_rows(ray_env, ray_temp_dir, ray_head, fake_llm, fake_llm_overrides,
                                                     tmp_path: Path) -> None:
    reference = run_sweep(["hydra/launcher=joblib"], tmp_path / "joblib", fake_llm_overrides)
    assert sorted(reference) == sorted(f"{env}-L{level}-{agent}" for env in ("cartpole", "frozenlake")
                                       for level in (1, 5) for agent in ("naive", "random"))
    for point, files in reference.items():
        assert [(r["seed"], r["episode"], r["status"]) for r in files["episodes.jsonl"]] == [
            (0, 0, "done"), (0, 1, "done"), (1, 0, "done"), (1, 1, "done")], point
        assert len(files["steps.jsonl"]) == sum(r["steps"] for r in files["episodes.jsonl"]) > 0, point
        # The scripted server answered the LLM agent's jobs, wherever they ran.
        assert all((r["llm_calls"] > 0) == point.endswith("naive") for r in files["episodes.jsonl"]), point
    calls_per_sweep = len(fake_llm.requests)
    assert calls_per_sweep > 0

    launchers = {
        "submitit_local": (["hydra/launcher=submitit_local"], None),
        # The plugin's own preset: a private Ray started inside textgym-eval ("local": never join a cluster).
        "ray": (["hydra/launcher=ray", "hydra.launcher.ray.init.address=local",
                 "+hydra.launcher.ray.init.num_cpus=2", "+hydra.launcher.ray.init.include_dashboard=false",
                 f"+hydra.launcher.ray.init._temp_dir={ray_temp_dir}"], ray_env),
        "ray_cluster": (["hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={ray_head}"], ray_env),
    }
    for name, (launcher_args, env) in launchers.items():
        started = time.perf_counter()
        results = run_sweep(launcher_args, tmp_path / name, fake_llm_overrides, env=env)
        print(f"{name}: sweep of {len(results)} points in {time.perf_counter() - started:.1f} s")
        assert sorted(results) == sorted(reference), name
        for point in reference:
            for file in ("episodes.jsonl", "steps.jsonl"):
                assert results[point][file] == reference[point][file], f"{name} {point} {file}"
    # Every launcher asked the same questions (the cache is off), none more.
    assert len(fake_llm.requests) == calls_per_sweep * (1 + len(launchers))


def test_ray_cluster_preset_joins_without_resource_settings() -> None:
    """Ray refuses object-store or CPU sizes from a job that joins a running cluster (hydra#2893)."""
    result = run_cli(["experiments.run_agent", "hydra/launcher=ray_cluster", "--cfg", "hydra"], cwd=REPO_ROOT)
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
    assert launcher["ray"]["init"] == {"address": "auto", "object_store_memory": None}
    assert launcher["ray"]["remote"] == {"num_cpus": 2}


def test_slurm_preset_composes_to_its_submitit_settings(tmp_path: Path) -> None:
    result = run_cli(["experiments.run_agent", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                      f"results_dir={tmp_path}", "--cfg", "hydra"], cwd=REPO_ROOT)
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    preset = OmegaConf.to_container(OmegaConf.load(REPO_ROOT / "conf" / "hydra" / "launcher" / "slurm.yaml"))
    preset.pop("defaults")
    expected = {**preset, "partition": "gpu"}  # the command line still wins over the preset
    assert {key: launcher[key] for key in expected} == expected
    assert expected["timeout_min"] == 240 and expected["cpus_per_task"] == 4 and expected["mem_gb"] == 16
    # submitit's own Slurm settings come along, with its job files kept inside the sweep dir.
    assert {"submitit_folder", "gpus_per_node", "constraint", "qos", "setup", "additional_parameters"} <= set(launcher)
    assert launcher["submitit_folder"] == "${hydra.sweep.dir}/.submitit/%j"


def test_sharded_sweep_over_jobs_equals_one_unsharded_run(tmp_path: Path) -> None:
    """README's ``-m shard=1/n,...,n/n hydra/launcher=slurm``, on submitit_local: one run dir, one report table."""
    seeds = f"seeds=[{','.join(map(str, range(16)))}]"
    common = ["env=frozenlake", "level=1", "agent=random", seeds, "episodes=2", "logger=none", "progress=false"]
    run_cli(["experiments.run_agent", "-m", *common, "shard=1/4,2/4,3/4,4/4", "hydra/launcher=submitit_local",
             f"results_dir={tmp_path / 'sharded'}"], cwd=tmp_path, timeout=600)
    run_cli(["experiments.run_agent", *common, f"results_dir={tmp_path / 'whole'}"], cwd=tmp_path)
    sharded_dir = tmp_path / "sharded" / "sweep" / "frozenlake-L1-random"
    whole_dir = tmp_path / "whole" / "eval" / "frozenlake-L1-random"
    assert sorted(p.name for p in sharded_dir.glob("episodes*.jsonl")) == [
        f"episodes.shard{i}of4.jsonl" for i in range(1, 5)]
    for kind in ("episodes", "steps"):
        sharded = sorted((_strip_schedule(r) for f in sharded_dir.glob(f"{kind}.shard*.jsonl") for r in iter_jsonl(f)),
                         key=_row_order)
        whole = sorted((_strip_schedule(r) for r in iter_jsonl(whole_dir / f"{kind}.jsonl")), key=_row_order)
        assert sharded == whole and len(whole) >= 32, kind
    tables = {}
    for name, results in (("sharded", tmp_path / "sharded" / "sweep"), ("whole", tmp_path / "whole" / "eval")):
        run_cli(["experiments.reports.report", f"results=[{results}]", f"out_dir={tmp_path / f'report_{name}'}"],
                cwd=tmp_path, env={"MPLBACKEND": "Agg"})
        tables[name] = (tmp_path / f"report_{name}" / "report.csv").read_text()
    assert tables["sharded"] == tables["whole"] and "frozenlake" in tables["whole"]
