"""The episodes.jsonl row is built in one place, in schema order, and rejects fields outside the schema."""

from __future__ import annotations

import pytest

from experiments.results import EPISODE_FIELDS, episode_row


def test_row_has_schema_fields_in_order_with_defaults() -> None:
    row = episode_row(3.0, kind="ppo", env="cartpole", env_id="TextGym-CartPole-v0", agent="ppo", seed=0,
                      episode=1, steps=3, terminated=True, wall_time_s=0.1)
    assert list(row) == [f for f in EPISODE_FIELDS if f != "schema_version"]
    assert row["return"] == 3.0 and row["level"] is None and row["prompt_tokens"] == 0


def test_unknown_or_missing_fields_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown \['levle'\].*missing \['agent'"):
        episode_row(1.0, kind="agent", env="cartpole", env_id="x", levle=1, seed=0, episode=0, steps=1,
                    terminated=True, wall_time_s=0.0)
