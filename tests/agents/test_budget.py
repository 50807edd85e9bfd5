from __future__ import annotations

from agents.base import EpisodeResult, Transition, render_trajectory
from agents.budget import estimate_tokens, keep_head_and_tail, keep_newest


def test_estimate_counts_words_number_groups_and_signs() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("push left") == 2
    assert estimate_tokens("-0.0234") == 5  # "-", "0", ".", "023", "4": digits in groups of up to three
    assert estimate_tokens("1234567") == 3


def test_head_and_tail_are_kept_and_the_cut_is_counted() -> None:
    lines = [f"step {n} went fine" for n in range(100)]
    kept = keep_head_and_tail(lines, 40)
    marker = next(line for line in kept if "left out" in line)
    left_out = int(marker.split()[1])
    assert kept[0] == lines[0] and kept[-1] == lines[-1]
    assert len(kept) - 1 + left_out == len(lines)
    assert sum(estimate_tokens(line) for line in kept if line != marker) <= 40
    assert keep_head_and_tail(lines[:3], 1000) == lines[:3]


def test_newest_are_kept_first_and_the_newest_always() -> None:
    assert keep_newest(["a b c", "d e f", "g h i"], 6) == (["d e f", "g h i"], 1)
    assert keep_newest(["a very long lesson indeed"], 1) == (["a very long lesson indeed"], 0)
    assert keep_newest([], 5) == ([], 0)


def test_render_trajectory_never_cuts_silently() -> None:
    steps = [Transition(f"state {n}", "push left", 1.0, f"state {n + 1}", n == 59, False) for n in range(60)]
    text = render_trajectory(EpisodeResult(0, 60.0, 60, steps), budget_tokens=80)
    assert "Episode 1: return 60.00 in 60 steps, it terminated." in text
    assert "1. state 0 Action: push left -> reward 1.00." in text and "60. state 59" in text
    assert "steps left out (over the 80-token budget)" in text and text.endswith("Final state: state 60")
    whole = render_trajectory(EpisodeResult(0, 60.0, 60, steps), budget_tokens=10_000)
    assert "left out" not in whole and all(f"{n}. state {n - 1} " in whole for n in range(1, 61))
