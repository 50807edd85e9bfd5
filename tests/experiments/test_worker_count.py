"""workers=auto (issue 25): the worker count from the streams in flight and the cores, never slower than one."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.running.workers import AUTO_MIN_STREAMS, auto_workers, usable_cores, worker_count
from tests.experiments.conftest import run_cli


@pytest.mark.parametrize(("streams", "cores", "workers"), [
    (1, 16, 1), (64, 16, 1), (AUTO_MIN_STREAMS - 1, 64, 1),  # one event loop keeps up below 128 streams
    (1024, 2, 1), (1024, 1, 1),  # two cores: the parent and one loop already share them
    (128, 16, 4), (256, 16, 8), (1024, 16, 15),  # one per 32 streams, a core left to the parent
    (256, 4, 3), (4096, 128, 127),
])
def test_auto_picks_one_process_until_streams_and_cores_pay_for_more(streams: int, cores: int, workers: int) -> None:
    assert auto_workers(streams, cores) == workers


def test_an_explicit_count_is_kept_and_bad_ones_are_refused() -> None:
    assert worker_count(4, 64, cores=2) == 4  # asked for: a benchmark may want what auto would not pick
    assert worker_count("auto", 256, cores=16) == 8
    assert worker_count("auto", 256) == auto_workers(256, usable_cores())
    for bad in (0, -1, True, "2", "many", 1.5):
        with pytest.raises(ValueError, match="workers must be an int >= 1 or auto"):
            worker_count(bad, 64)  # type: ignore[arg-type]


def test_auto_is_textgym_eval_default_and_plays_in_one_process_for_few_streams(tmp_path: Path) -> None:
    result = run_cli(["experiments.run_agent", "agent=random", "env=frozenlake", "seeds=[0,1,2]", "logger=none",
                      "progress=false", f"results_dir={tmp_path}"], cwd=tmp_path)
    assert "3 episodes done, 0 failed" in result.stdout
    assert "worker processes" not in result.stdout + result.stderr
    bad = run_cli(["experiments.run_agent", "agent=random", "workers=some", "logger=none", "progress=false",
                   f"results_dir={tmp_path}"], cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "workers must be an int >= 1 or auto, got 'some'" in bad.stderr
