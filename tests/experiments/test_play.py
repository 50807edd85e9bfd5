"""textgym-play through a real pseudo-terminal: a person types whole FrozenLake episodes in every accepted form,
the episodes land in the same result files as any agent's, replay exactly, and quitting saves nothing half-done."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

from experiments.records.results import iter_jsonl
from tests.experiments.conftest import default_sigint, run_cli

PLAY = Path(sys.executable).with_name("textgym-play")  # the console script installed beside this interpreter
PROMPT = "action> "
# The 4x4 map without slipping: down, down, right, right, down, right reaches the goal; down then right is a hole.
TO_THE_GOAL = ["2", "fly", "move down", '{"action": "move right"}', "Action: 3", "move down", "right please",
               "move right"]
INTO_A_HOLE = ["move down", "3"]


FROZENLAKE = ("env=frozenlake", "level=5", "+env.kwargs.is_slippery=false")


def _spawn(results_dir: Path, *overrides: str, game: tuple[str, ...] = FROZENLAKE,
           columns: int = 200) -> pexpect.spawn:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return pexpect.spawn(str(PLAY), [*game, f"results_dir={results_dir}", *overrides],
                         env=env, encoding="utf-8", timeout=60, dimensions=(50, columns), preexec_fn=default_sigint)


def _type(child: pexpect.spawn, lines: list[str]) -> None:
    for line in lines:
        child.expect_exact(PROMPT)
        child.sendline(line)


def _positions(observations: list[str]) -> list[tuple[int, int]]:
    return [tuple(map(int, re.search(r"row (\d+), column (\d+)", o).groups())) for o in observations]


def test_a_person_plays_two_episodes_into_the_agents_result_files(tmp_path: Path) -> None:
    child = _spawn(tmp_path, "episodes=2")
    child.expect_exact("Episode 1 of 2")
    child.expect_exact("Goal:")  # the briefing a language agent's system prompt holds
    child.expect_exact("Expert guidance:")  # L5's hand-written knowledge
    child.expect_exact("Step 1. You are at row 0, column 0")
    child.expect_exact("Actions: 1: move left | 2: move down | 3: move right | 4: move up")
    _type(child, TO_THE_GOAL[:2])
    child.expect_exact("Not an action: 'fly'.")
    _type(child, TO_THE_GOAL[2:])
    child.expect_exact("-> move right: reward 1.00. The episode is over.")
    child.expect_exact("Episode 1: return 1.00 in 6 steps.")
    child.expect_exact("Episode 2 of 2")
    _type(child, INTO_A_HOLE)
    child.expect_exact("Episode 2: return 0.00 in 2 steps.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before

    run_dir = tmp_path / "eval" / "frozenlake-L5-human"
    rows = list(iter_jsonl(run_dir / "episodes.jsonl"))
    assert [(r["agent"], r["kind"], r["level"], r["seed"], r["episode"], r["return"], r["steps"], r["terminated"])
            for r in rows] == [("human", "agent", 5, 0, 0, 1.0, 6, True), ("human", "agent", 5, 0, 1, 0.0, 2, True)]
    assert [r["invalid_replies"] for r in rows] == [2, 0] and all(r["invalid_actions"] == 0 for r in rows)
    steps = list(iter_jsonl(run_dir / "steps.jsonl"))
    first = [s for s in steps if s["episode"] == 0]
    assert _positions([s["observation"] for s in first]) == [(0, 0), (1, 0), (2, 0), (2, 1), (2, 2), (3, 2)]
    assert [s["action_text"] for s in first] == ["move down", "move down", "move right", "move right", "move down",
                                                 "move right"]
    assert first[1]["replies"] == ["fly", "move down"]  # every line typed for a step, like a model's raw replies
    # A person's episodes are episodes like any other: exact replay works on them.
    out = run_cli(["experiments.reports.replay", str(run_dir)], cwd=tmp_path)
    assert "all 2 episodes match their recording" in out.stdout


def test_quitting_saves_nothing_half_done_and_the_next_seed_is_free(tmp_path: Path) -> None:
    run_dir = tmp_path / "eval" / "frozenlake-L5-human"
    # Ctrl-D (end of input) after one move.
    child = _spawn(tmp_path)
    _type(child, ["move down"])
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect_exact("Stopped. The unfinished episode was not saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert not list(iter_jsonl(run_dir / "episodes.jsonl"))
    assert not list(iter_jsonl(run_dir / "steps.jsonl"))

    # The same stream is still open: play it to the hole; then "quit" in the next stream, seed 1.
    child = _spawn(tmp_path)
    child.expect_exact("seed 0")
    _type(child, INTO_A_HOLE)
    child.expect(pexpect.EOF)
    child.close()
    child = _spawn(tmp_path)
    child.expect_exact("seed 1")
    _type(child, ["quit"])
    child.expect_exact("Stopped.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # Ctrl-C while the game waits for a line ends at once too (the input thread does not hold the exit).
    child = _spawn(tmp_path)
    child.expect_exact(PROMPT)
    child.sendintr()
    child.expect_exact("Interrupted. The unfinished episode was not saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    rows = list(iter_jsonl(run_dir / "episodes.jsonl"))
    assert [(r["seed"], r["return"], r["steps"]) for r in rows] == [(0, 0.0, 2)]

    # Asking for a played seed again is one line and exit 2.
    child = _spawn(tmp_path, "seed=0")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert child.before.strip().splitlines()[-1] == (
        f"textgym-play: error: every episode of seed 0 is already played in {run_dir}: pass another seed=, or leave "
        f"seed unset to take the next free one")


@pytest.mark.parametrize(("override", "message"), [
    ("level=9", "textgym-play: error: level=9 is not a level: expected one of [1, 2, 3, 4, 5]"),
    ("episodes=0", "textgym-play: error: episodes must be from 1 to 1000, got 0"),
])
def test_bad_values_are_one_line(tmp_path: Path, override: str, message: str) -> None:
    child = _spawn(tmp_path, override)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2 and child.before.strip().splitlines()[-1] == message


@pytest.mark.parametrize("env_id", ["TextGym-Reacher-v0"])  # skipped by name without the mujoco extra
def test_a_person_plays_a_vector_action_env_in_every_form(tmp_path: Path, env_id: str) -> None:
    child = _spawn(tmp_path, game=("env=reacher", "level=1", "max_steps=3"))
    child.expect_exact("Type one number per actuator;")
    child.expect_exact("Step 1. ")
    # Each actuator's name and range, in order, and the forms the parser reads.
    child.expect_exact("Action: one number per actuator, in this order: first_hinge -1.00 to 1.00 | "
                       "second_hinge -1.00 to 1.00")
    child.expect_exact("Type a list in that order [0.00, 0.00], name: value pairs (first_hinge: 0.00, "
                       "second_hinge: 0.00) or JSON")
    _type(child, ["[0.5, -0.2]", "0.5"])
    child.expect_exact("Not an action: '0.5'.")  # one number for two actuators: asked again, nothing played
    _type(child, ["first_hinge: 2, second_hinge: -0.3", '{"first_hinge": 0, "second_hinge": 0.1}'])
    child.expect_exact("Episode 1: return")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    steps = list(iter_jsonl(tmp_path / "eval" / "reacher-L1-human" / "steps.jsonl"))
    assert [step["action"] for step in steps] == [pytest.approx(a) for a in ([0.5, -0.2], [1.0, -0.3], [0.0, 0.1])]
    assert [step["action_text"] for step in steps] == ['{"first_hinge": 0.50, "second_hinge": -0.20}',
                                                       '{"first_hinge": 1.00, "second_hinge": -0.30}',
                                                       '{"first_hinge": 0.00, "second_hinge": 0.10}']
    assert steps[1]["replies"] == ["0.5", "first_hinge: 2, second_hinge: -0.3"]


def test_paragraphs_wrap_between_words_at_the_terminal_width(tmp_path: Path) -> None:
    child = _spawn(tmp_path, columns=60)
    transcript = []
    for line in TO_THE_GOAL:
        child.expect_exact(PROMPT)
        transcript.append(child.before)
        child.sendline(line)
    child.expect(pexpect.EOF)
    transcript.append(child.before)
    text = "".join(transcript).replace("\r\n", "\n")
    assert "Expert guidance:" in text  # the long L5 briefing was shown
    # Before: the briefing's paragraphs ran on, and the terminal broke words at its edge. Only a word longer than
    # the terminal (the run dir's path) may still be.
    too_long = [line for line in text.splitlines() if len(line) > 59 and " " in line.strip()]
    assert too_long == []
    assert any(line.startswith("Results: ") or line.strip().startswith("/") for line in text.splitlines())
