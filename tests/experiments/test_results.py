"""Result files: rows in schema order, failure records that never count as done, schema-2 rows, shard files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from experiments.records.results import (
    EPISODE_FIELDS,
    EpisodeKey,
    ResultsWriter,
    Shard,
    episode_row,
    error_text,
    iter_jsonl,
    load_episodes,
)


def test_row_has_schema_fields_in_order_with_defaults() -> None:
    row = episode_row(3.0, kind="ppo", env="cartpole", env_id="TextGym-CartPole-v0", agent="ppo", seed=0,
                      episode=1, steps=3, terminated=True, wall_time_s=0.1)
    assert list(row) == [f for f in EPISODE_FIELDS if f != "schema_version"]
    assert row["return"] == 3.0 and row["level"] is None and row["prompt_tokens"] == 0


def test_unknown_or_missing_fields_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown \['levle'\].*missing \['agent'"):
        episode_row(1.0, kind="agent", env="cartpole", env_id="x", levle=1, seed=0, episode=0, steps=1,
                    terminated=True, wall_time_s=0.0)


def _agent_row(seed: int, episode: int, **fields) -> dict:
    return episode_row(fields.pop("ret", 1.0), kind="agent", env="cartpole", env_id="TextGym-CartPole-v0", level=1,
                       agent="naive", llm_model="m", seed=seed, episode=episode, steps=2, terminated=True,
                       wall_time_s=0.1, **fields)


def test_failed_rows_need_an_error_and_no_return() -> None:
    row = _agent_row(0, 0, ret=None, status="failed", error="LLMError: gave up")
    assert row["status"] == "failed" and row["return"] is None and row["notes"] == {}
    with pytest.raises(ValueError, match="failed episode row needs an error"):
        _agent_row(0, 0, ret=None, status="failed")
    with pytest.raises(ValueError, match="done episode row needs a return"):
        _agent_row(0, 0, ret=None)
    with pytest.raises(ValueError, match="status must be"):
        _agent_row(0, 0, status="lost")


def test_error_text_is_one_bounded_line() -> None:
    assert error_text(ValueError("bad\n  value")) == "ValueError: bad value"
    assert error_text(KeyError()) == "KeyError"
    assert len(error_text(RuntimeError("x" * 10_000))) == 2_000


def test_failure_is_retried_and_superseded(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    writer.write_episode(_agent_row(0, 0), [{"step": 0}, {"step": 1}], {"memory": []})
    writer.write_failure(_agent_row(1, 0, ret=None, status="failed", error="LLMError: gave up"))
    with pytest.raises(ValueError, match="use write_failure"):
        writer.write_episode(_agent_row(2, 0, ret=None, status="failed", error="x"))
    key = EpisodeKey("cartpole", 1, "naive", 1, 0, llm_model="m")
    again = ResultsWriter(tmp_path)  # a rerun: the failed episode is not done, and its reason is known
    assert not again.is_done(key) and again.failed == {key: "LLMError: gave up"}
    assert [r["status"] for r in load_episodes([tmp_path], include_failed=True)] == ["done", "failed"]
    assert len(load_episodes([tmp_path])) == 1
    again.write_episode(_agent_row(1, 0, ret=7.0))
    assert again.is_done(key) and not again.failed
    rows = load_episodes([tmp_path], include_failed=True)
    assert sorted((r["seed"], r["status"], r["return"]) for r in rows) == [(0, "done", 1.0), (1, "done", 7.0)]
    assert len(list(iter_jsonl(tmp_path / "episodes.jsonl"))) == 3  # append-only: the failure stays on record


def test_a_stream_keeps_its_states_in_one_file_and_a_torn_line_is_cut_before_appending(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    for episode in range(3):
        writer.write_episode(_agent_row(0, episode), [{"step": 0}], {"memory": [f"after {episode}"]})
    key = EpisodeKey("cartpole", 1, "naive", 0, 0, llm_model="m")
    [path] = (tmp_path / "agent_state").iterdir()
    assert path.name == f"{key.stream}.jsonl" and len(path.read_text().splitlines()) == 3
    assert [ResultsWriter(tmp_path).load_state(dataclasses.replace(key, episode=k)) for k in range(3)] == [
        {"memory": [f"after {k}"]} for k in range(3)]
    # A run killed while appending a state line: the next writer cuts it before its own line goes in.
    with path.open("ab") as handle:
        handle.write(b'{"episode": 3, "sta')
    again = ResultsWriter(tmp_path)
    again.write_episode(_agent_row(0, 3), [{"step": 0}], {"memory": ["after 3"]})
    assert again.load_state(dataclasses.replace(key, episode=3)) == {"memory": ["after 3"]}
    assert len(list(iter_jsonl(path))) == 4 and path.read_bytes().endswith(b"\n")


def test_a_state_is_written_only_when_it_changed_and_read_back_for_every_episode(tmp_path: Path) -> None:
    key = EpisodeKey("cartpole", 1, "naive", 0, 0, llm_model="m")
    states = [{"memory": []}, {"memory": []}, {"memory": ["a"]}, {"memory": ["a"]}, {"memory": ["a"]}]
    writer = ResultsWriter(tmp_path)
    for episode, state in enumerate(states[:4]):
        writer.write_episode(_agent_row(0, episode), [{"step": 0}], state)
    path = tmp_path / "agent_state" / f"{key.stream}.jsonl"
    assert [line["episode"] for line in iter_jsonl(path)] == [0, 2]
    # A crash after episode 4's state line, before its episodes line: episode 3 still reads its own state.
    with path.open("ab") as handle:
        handle.write(b'{"episode": 4, "state": {"memory": ["lost"]}}\n')
    assert ResultsWriter(tmp_path).load_state(dataclasses.replace(key, episode=3)) == {"memory": ["a"]}
    # The next writer saves its first state of the stream whatever came before, so episode 4 redone wins.
    again = ResultsWriter(tmp_path)
    again.write_episode(_agent_row(0, 4), [{"step": 0}], states[4])
    assert [line["episode"] for line in iter_jsonl(path)] == [0, 2, 4, 4]
    assert [again.load_state(dataclasses.replace(key, episode=k)) for k in range(5)] == states


def test_a_state_whose_write_failed_is_written_again(tmp_path: Path) -> None:
    writer = ResultsWriter(tmp_path)
    writer.write_episode(_agent_row(0, 0), [{"step": 0}], {"memory": ["a"]})
    path = tmp_path / "agent_state" / f"{EpisodeKey.of(_agent_row(0, 0)).stream}.jsonl"
    path.unlink()
    path.mkdir()  # the state file cannot take episode 1's line: the episode fails
    with pytest.raises(IsADirectoryError):
        writer.write_episode(_agent_row(0, 1), [{"step": 0}], {"memory": ["b"]})
    path.rmdir()
    writer.write_episode(_agent_row(0, 1), [{"step": 0}], {"memory": ["b"]})  # the same state, played again
    assert writer.load_state(EpisodeKey.of(_agent_row(0, 1))) == {"memory": ["b"]}


def test_a_run_dir_with_a_state_file_per_episode_still_resumes(tmp_path: Path) -> None:
    key = EpisodeKey("cartpole", 1, "naive", 0, 0, llm_model="m")
    old = tmp_path / "agent_state" / key.stream / "ep0.json"  # the layout before per-stream files
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"memory": ["old"]}))
    assert ResultsWriter(tmp_path).load_state(key) == {"memory": ["old"]}
    assert ResultsWriter(tmp_path).load_state(dataclasses.replace(key, episode=1)) is None


def test_schema_2_rows_read_as_done(tmp_path: Path) -> None:
    old = {k: v for k, v in _agent_row(0, 0).items() if k not in ("status", "error", "notes", "cached_prompt_tokens")}
    (tmp_path / "episodes.jsonl").write_text(json.dumps({"schema_version": 2, **old}) + "\n")
    [row] = load_episodes([tmp_path])
    assert row["status"] == "done" and row["error"] is None and row["notes"] == {} and row["cached_prompt_tokens"] == 0
    assert ResultsWriter(tmp_path).is_done(EpisodeKey.of(row))


def test_shard_split_is_by_position_and_covers_every_seed() -> None:
    seeds = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    shards = [Shard.parse(f"{i}/4") for i in range(1, 5)]
    assert [s.select(seeds) for s in shards] == [[10, 14, 18], [11, 15, 19], [12, 16], [13, 17]]
    assert Shard.parse(None) is None and Shard.parse("null") is None and str(Shard.parse(" 2 / 8 ")) == "2/8"
    for bad in ("0/4", "5/4", "2", "a/b", "2/0"):
        with pytest.raises(ValueError, match="shard must be i/n"):
            Shard.parse(bad)


def test_shards_write_their_own_files_and_see_each_other(tmp_path: Path) -> None:
    first, second = ResultsWriter(tmp_path, shard=Shard(1, 2)), ResultsWriter(tmp_path, shard=Shard(2, 2))
    first.write_episode(_agent_row(0, 0), [{"step": 0}])
    second.write_episode(_agent_row(1, 0), [{"step": 0}])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "episodes.shard1of2.jsonl", "episodes.shard2of2.jsonl", "steps.shard1of2.jsonl", "steps.shard2of2.jsonl"]
    assert second.shard_file("calls.jsonl").name == "calls.shard2of2.jsonl"
    assert len(ResultsWriter(tmp_path).done) == 2  # an unsharded rerun knows what every shard finished
    assert sorted(r["seed"] for r in load_episodes([tmp_path])) == [0, 1]
