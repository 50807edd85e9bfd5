"""Group commit (issue 25): streams' episodes share their fsyncs, files and crash safety stay as they were.

``ResultsWriter.commit_episode`` (what the stream loop awaits) against ``write_episode`` (one episode, its own
fsyncs): the same bytes in every file, an episode reported done only once its ``episodes.jsonl`` line is on disk,
and a process killed with SIGKILL mid-batch losing none of the episodes it had reported.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from experiments.records.jsonl import GroupCommit, iter_jsonl
from experiments.records.results import EpisodeKey, ResultsWriter, load_episodes
from tests.experiments.conftest import REPO_ROOT
from tests.experiments.test_transcripts import episode_calls, row


def finished(seed: int, episode: int) -> dict[str, Any]:
    """A finished episode's parts, as the stream loop hands them over (steps, state, calls with shared texts)."""
    return {"row": row(episode, seed), "steps": [{"step": s, "action": "push left", "reward": 1.0} for s in range(3)],
            "agent_state": {"experience": [f"seed {seed} learned {k}" for k in range(episode + 1)]},
            "calls": episode_calls(2, episode)}


def run_files_bytes(run_dir: Path) -> dict[str, bytes]:
    return {str(path.relative_to(run_dir)): path.read_bytes() for path in sorted(run_dir.rglob("*")) if path.is_file()}


def test_group_commit_writes_the_same_bytes_as_one_episode_at_a_time(tmp_path: Path) -> None:
    episodes = [finished(seed, k) for k in range(3) for seed in range(8)]
    one_by_one = ResultsWriter(tmp_path / "sync", identity={"model": "scripted"})
    for parts in episodes:
        one_by_one.write_episode(**parts)

    grouped = ResultsWriter(tmp_path / "grouped", identity={"model": "scripted"})

    async def commit_all() -> None:  # all at once, as 24 streams finishing together would
        await asyncio.gather(*(grouped.commit_episode(**parts) for parts in episodes))

    asyncio.run(commit_all())
    expected = run_files_bytes(tmp_path / "sync")
    assert {"episodes.jsonl", "steps.jsonl", "calls.jsonl", "texts.jsonl"} <= set(expected)
    assert sum(name.startswith("agent_state/") for name in expected) == 8  # a file a stream, a line an episode
    assert run_files_bytes(tmp_path / "grouped") == expected
    # 24 episodes, two rounds: their steps, calls, texts and states, then their episodes lines.
    assert grouped._commits.rounds == 2 and grouped._commits.submitted == 48
    assert grouped.done == one_by_one.done and len(grouped.done) == 24
    # Committing a recorded episode again writes nothing.
    asyncio.run(commit_all())
    assert run_files_bytes(tmp_path / "grouped") == expected


def test_an_episode_is_reported_done_only_once_its_line_is_on_disk(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    reported: list[EpisodeKey] = []

    async def stream(seed: int) -> None:
        for k in range(4):
            parts = finished(seed, k)
            key = EpisodeKey.of(parts["row"])
            written = writer.commit_episode(**parts)
            assert key not in writer.done  # queued, not yet kept
            await written
            # Read back through a fresh reader: the line is in the file, with its steps and state.
            assert key in {EpisodeKey.of(r) for r in load_episodes([tmp_path])}
            assert writer.load_state(key) == parts["agent_state"]
            reported.append(key)
            await asyncio.sleep(0.001 * (seed % 3))  # streams finish at different moments

    async def main() -> None:
        await asyncio.gather(*(stream(seed) for seed in range(16)))

    asyncio.run(main())
    assert len(reported) == 64 and writer.done == set(reported)
    # Shared flushes: far fewer rounds than the two a lone episode needs.
    assert writer._commits.rounds < 64


def test_a_failed_flush_reaches_its_waiters_and_the_next_round_still_runs(tmp_path: Path) -> None:
    commits = GroupCommit()

    async def main() -> None:
        missing = commits.submit([(tmp_path / "no-such-dir" / "x.jsonl", b"{}\n")])
        with pytest.raises(FileNotFoundError):
            await missing
        await commits.submit([(tmp_path / "x.jsonl", b'{"a": 1}\n')])

    asyncio.run(main())
    assert (tmp_path / "x.jsonl").read_bytes() == b'{"a": 1}\n'


CRASH_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {repo!r})
from experiments.records.results import ResultsWriter
from tests.experiments.test_group_commit import finished

writer = ResultsWriter({run_dir!r})

async def stream(seed):
    for k in range(10_000):
        await writer.commit_episode(**finished(seed, k))
        print(seed, k, flush=True)

async def main():
    await asyncio.gather(*(stream(seed) for seed in range(32)))

asyncio.run(main())
"""


def test_a_run_killed_mid_batch_keeps_every_episode_it_reported(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT.format(repo=str(REPO_ROOT), run_dir=str(run_dir))],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    reported: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 120
    try:
        assert process.stdout is not None
        while len(reported) < 200 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seed, episode = map(int, line.split())
            reported.add((seed, episode))
        os.kill(process.pid, signal.SIGKILL)  # mid-batch: 32 streams keep committing until the very end
    finally:
        process.kill()
        process.wait(timeout=30)
    assert len(reported) >= 200, f"the writer reported only {len(reported)} episodes"

    resumed = ResultsWriter(run_dir)  # cuts a torn last line, drops the steps and calls of unfinished episodes
    on_disk = {(key.seed, key.episode) for key in resumed.done}
    assert reported <= on_disk
    # Every episode on disk has its steps and its state: the parts are kept before the episodes line.
    steps = {(r["seed"], r["episode"]) for r in iter_jsonl(run_dir / "steps.jsonl")}
    assert steps == on_disk
    assert all(resumed.load_state(key) == finished(key.seed, key.episode)["agent_state"] for key in resumed.done)
