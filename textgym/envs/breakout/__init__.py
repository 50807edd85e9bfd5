"""Breakout as text, from the console's RAM: paddle, ball, score and lives (ALE's ``ALE/Breakout-v5``)."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.envs.atari_common import AtariRamTranslator, bcd, read_int
from textgym.translator import Policy

__all__ = ["BreakoutTranslator"]

# RAM addresses (checked against the rendered frame and the rewards in tests/textgym/envs/test_atari_ram.py) and
# the offsets that turn them into screen columns and rows (columns 0-159 from the left, rows 0-209 from the top).
PADDLE_X, BALL_X, BALL_Y, SCORE_HIGH, SCORE_LOW, LIVES = 72, 99, 101, 76, 77, 57
PADDLE_COLUMN_OFFSET, BALL_COLUMN_OFFSET, BALL_ROW_OFFSET = 47, 48, -9
# The paddle is 16 columns wide and shrinks to 12 once the ball has got through to the top wall, until the next
# ball; no RAM byte was found that tells the width, so the text gives the paddle's left edge.
PADDLE_WIDTH, SHRUNK_PADDLE_WIDTH, PADDLE_TOP_ROW, PADDLE_BOTTOM_ROW = 16, 12, 189, 192
# The expert moves only when the ball is this many columns from its paddle's centre (a step moves the paddle up to
# ~20 columns, and sticky actions make finer control overshoot).
EXPERT_DEAD_ZONE = 6
NOOP, FIRE, RIGHT, LEFT = 0, 1, 2, 3


class BreakoutTranslator(AtariRamTranslator):
    """Speaks for ``ALE/Breakout-v5``: a paddle at the bottom bounces a ball into a wall of bricks."""

    name = "breakout"
    action_names = ("NOOP", "FIRE", "RIGHT", "LEFT")
    action_effects = {"NOOP": "do nothing", "FIRE": "launch a new ball when none is in play",
                      "RIGHT": "move your paddle right", "LEFT": "move your paddle left"}
    obfuscation_objects = ("mover", "token", "blocks")
    obfuscation_labels = {"paddle_column": "{mover} place", "ball_column": "{token} across",
                          "ball_row": "{token} along", "score": "tally", "lives": "tries"}
    obfuscation_axes = {"paddle_column": "columns", "ball_column": "columns", "ball_row": "rows"}
    obfuscation_words = ("breakout", "Breakout-v5", "TextGym-Breakout-v0", "brick", "bricks", "wall", "walls",
                         "lives", "life", "left", "right", "up", "down", "row", "rows", "column", "columns")

    def quantities(self, ram: Any) -> dict[str, int]:
        return {
            "paddle_column": int(ram[PADDLE_X]) - PADDLE_COLUMN_OFFSET,
            "ball_column": int(ram[BALL_X]) - BALL_COLUMN_OFFSET,
            # 0 in the RAM (row 9): no ball in play.
            "ball_row": int(ram[BALL_Y]) - BALL_ROW_OFFSET,
            "score": bcd(ram[SCORE_HIGH], ram[SCORE_LOW]),
            "lives": int(ram[LIVES]),
        }

    def describe(self, obs: Any) -> dict[str, Any]:
        values = self.quantities(obs)
        in_play = int(obs[BALL_Y]) != 0  # a 0 byte: no ball launched
        return {**values, "in_play": in_play, "lost": in_play and values["ball_row"] > PADDLE_BOTTOM_ROW,
                # From the paddle's left edge to the ball's centre (the ball is 2 columns wide).
                "ball_offset": values["ball_column"] + 1 - values["paddle_column"]}

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "paddle_top_row": PADDLE_TOP_ROW,
                "paddle_bottom_row": PADDLE_BOTTOM_ROW, "paddle_width": PADDLE_WIDTH,
                "shrunk_paddle_width": SHRUNK_PADDLE_WIDTH}

    def step_note(self, previous_obs: Any, action: Any, reward: float, obs: Any) -> str:
        """How far the ball moved during the step: its speed, which one observation does not show."""
        if not (int(previous_obs[BALL_Y]) and int(obs[BALL_Y])):
            return ""
        before, after = self.quantities(previous_obs), self.quantities(obs)
        across, down = after["ball_column"] - before["ball_column"], after["ball_row"] - before["ball_row"]
        return (f"During the last step the ball moved {abs(across)} columns {'right' if across >= 0 else 'left'} "
                f"and {abs(down)} rows {'down' if down >= 0 else 'up'}.")

    def read_observation(self, text: str) -> np.ndarray:
        number = r"(-?\d+)"
        in_play = "No ball is in play" not in text
        ball_column = read_int(rf"(?:The ball is at|the last one was at) column {number}", text)
        ball_row = read_int(rf"The ball is at column -?\d+, row {number}", text) if in_play else -BALL_ROW_OFFSET
        if not re.search(r"Score \d+", text):
            raise ValueError(f"no score in {text!r}")
        return np.array([read_int(rf"Your paddle's left edge is at column {number}", text), ball_column, ball_row,
                         read_int(r"Score (\d+)", text), read_int(r"lives left: (\d+)", text)], dtype=float)

    def expert_policy(self, env: gym.Env) -> Policy:
        return self.expert_action

    def expert_action(self, ram: Any) -> int:
        """Launch a ball when none is in play; otherwise keep the middle of a full-width paddle under the ball."""
        state = self.describe(ram)
        if not state["in_play"] or state["lost"]:
            return FIRE
        gap = state["ball_offset"] - PADDLE_WIDTH // 2
        if gap > EXPERT_DEAD_ZONE:
            return RIGHT
        if gap < -EXPERT_DEAD_ZONE:
            return LEFT
        return NOOP
