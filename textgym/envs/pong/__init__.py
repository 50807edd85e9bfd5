"""Pong as text, from the console's RAM: two paddles, a ball and the score (ALE's ``ALE/Pong-v5``)."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.envs.atari_common import AtariRamTranslator, read_int, signed
from textgym.translator import Policy

__all__ = ["PongTranslator"]

# RAM addresses (checked against the rendered frame in tests/textgym/envs/test_atari_ram.py) and the offsets that
# turn them into screen rows and columns (rows 0-209 from the top, columns 0-159 from the left).
PLAYER_Y, OPPONENT_Y, BALL_X, BALL_Y, BALL_VX, BALL_VY, PLAYER_SCORE, OPPONENT_SCORE = 51, 50, 49, 54, 58, 56, 14, 13
PLAYER_ROW_OFFSET, OPPONENT_ROW_OFFSET, BALL_ROW_OFFSET, BALL_COLUMN_OFFSET = 14, 15, 14, 49
PADDLE_HEIGHT, BALL_HEIGHT = 16, 4
# The ball's top row bounces between these rows, and it reaches the column of your paddle's face at this column.
TOP_BOUNCE_ROW, BOTTOM_BOUNCE_ROW, PLAYER_FACE_COLUMN = 34, 190, 139
# Where the expert keeps its paddle's centre between points (measured: better than the middle of the field).
WAITING_ROW = 124
# The expert moves only when the predicted ball centre is this many rows from its paddle's centre: each step moves
# the paddle up to ~20 rows, and sticky actions make finer control overshoot.
EXPERT_DEAD_ZONE = 12
UP, DOWN, STAY = 2, 3, 0


def _reflect(row: float, low: float, high: float) -> float:
    """Where a ball moving freely to ``row`` ends up after bouncing between ``low`` and ``high``."""
    span = high - low
    folded = (row - low) % (2 * span)
    return low + (folded if folded <= span else 2 * span - folded)


class PongTranslator(AtariRamTranslator):
    """Speaks for ``ALE/Pong-v5``: you play the right (green) paddle against the computer's left (orange) one."""

    name = "pong"
    action_names = ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE")
    action_effects = {"NOOP": "do nothing; the paddle slows to a stop", "FIRE": "same as NOOP in this game",
                      "RIGHT": "move your paddle up", "LEFT": "move your paddle down",
                      "RIGHTFIRE": "same as RIGHT: move up", "LEFTFIRE": "same as LEFT: move down"}
    obfuscation_objects = ("mover", "rival", "token")
    obfuscation_labels = {"paddle_top": "{mover} place", "opponent_top": "{rival} place",
                          "ball_column": "{token} across", "ball_row": "{token} along",
                          "ball_right_speed": "{token} across rate", "ball_down_speed": "{token} along rate",
                          "score": "your tally", "opponent_score": "{rival} tally"}
    obfuscation_axes = {"paddle_top": "rows", "opponent_top": "rows", "ball_row": "rows", "ball_column": "columns",
                        "score": "points", "opponent_score": "points"}
    obfuscation_rates = {"ball_right_speed": "columns", "ball_down_speed": "rows"}
    obfuscation_words = ("pong", "Pong-v5", "TextGym-Pong-v0", "tennis", "ping", "green", "orange", "computer",
                         "21", "left", "right", "up", "down", "row", "rows", "column", "columns")

    def quantities(self, ram: Any) -> dict[str, int]:
        return {
            "paddle_top": int(ram[PLAYER_Y]) - PLAYER_ROW_OFFSET,
            "opponent_top": int(ram[OPPONENT_Y]) - OPPONENT_ROW_OFFSET,
            "ball_column": int(ram[BALL_X]) - BALL_COLUMN_OFFSET,
            # 0 in the RAM (row -14): no ball on the field, between points.
            "ball_row": int(ram[BALL_Y]) - BALL_ROW_OFFSET,
            # The console stores the horizontal speed with the opposite sign (positive = to the left).
            "ball_right_speed": -signed(ram[BALL_VX]),
            "ball_down_speed": signed(ram[BALL_VY]),
            "score": int(ram[PLAYER_SCORE]),
            "opponent_score": int(ram[OPPONENT_SCORE]),
        }

    def describe(self, obs: Any) -> dict[str, Any]:
        values = self.quantities(obs)
        in_play = int(obs[BALL_Y]) != 0  # a 0 byte: no ball on the field
        offset = (values["ball_row"] + BALL_HEIGHT / 2) - (values["paddle_top"] + PADDLE_HEIGHT / 2)
        return {**values, "in_play": in_play, "ball_offset": int(offset),
                "paddle_bottom": values["paddle_top"] + PADDLE_HEIGHT - 1,
                "opponent_bottom": values["opponent_top"] + PADDLE_HEIGHT - 1}

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "top_bounce_row": TOP_BOUNCE_ROW,
                "bottom_bounce_row": BOTTOM_BOUNCE_ROW, "face_column": PLAYER_FACE_COLUMN}

    def read_observation(self, text: str) -> np.ndarray:
        number = r"(-?\d+)"
        in_play = "out of play" not in text
        motion = re.search(r"moving (right|left) at (\d+) columns? and (down|up) at (\d+) rows? per frame", text)
        if motion is None:
            raise ValueError(f"no ball motion in {text!r}")
        return np.array([
            read_int(rf"Your paddle \(right\) covers rows {number}", text),
            read_int(rf"opponent's paddle \(left\) covers rows {number}", text),
            read_int(rf"(?:ball is at|it was last at) column {number}", text),
            read_int(rf"ball is at column -?\d+, row {number}", text) if in_play else -BALL_ROW_OFFSET,
            int(motion.group(2)) * (1 if motion.group(1) == "right" else -1),
            int(motion.group(4)) * (1 if motion.group(3) == "down" else -1),
            read_int(rf"Score: you {number}", text),
            read_int(rf"opponent {number}\.", text),
        ], dtype=float)

    def expert_policy(self, env: gym.Env) -> Policy:
        return self.expert_action

    def expert_action(self, ram: Any) -> int:
        """Meet the ball where it will cross your paddle's column, bounces included; else follow it."""
        state = self.describe(ram)
        target: float
        if not state["in_play"]:
            target = WAITING_ROW
        elif state["ball_right_speed"] > 0:
            frames = (PLAYER_FACE_COLUMN - state["ball_column"]) / state["ball_right_speed"]
            arrival = _reflect(state["ball_row"] + state["ball_down_speed"] * frames, TOP_BOUNCE_ROW,
                               BOTTOM_BOUNCE_ROW)
            target = arrival + BALL_HEIGHT / 2
        else:
            target = state["ball_row"] + BALL_HEIGHT / 2
        gap = target - (state["paddle_top"] + PADDLE_HEIGHT / 2)
        if gap < -EXPERT_DEAD_ZONE:
            return UP
        if gap > EXPERT_DEAD_ZONE:
            return DOWN
        return STAY
