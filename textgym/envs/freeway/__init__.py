"""Freeway as text, from the console's RAM: a chicken crossing ten lanes of traffic (ALE's ``ALE/Freeway-v5``)."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.envs.atari_common import AtariRamTranslator, bcd, read_int
from textgym.translator import Policy

__all__ = ["FreewayTranslator"]

LANES = 10
# RAM addresses (checked against the rendered frame and the rewards in tests/textgym/envs/test_atari_ram.py):
# the chicken's height, the score, and one car per lane; lane 1 (the bottom one) is byte 117, lane 10 byte 108.
CHICKEN_Y, SCORE, LANE_1_CAR = 14, 103, 117
# Screen geometry (columns 0-159 from the left, rows 0-209 from the top). The chicken covers rows
# 193 - y to 200 - y and columns 44 to 50; a car covers 8 columns from 157 - byte, and lane k rows
# LANE_TOP_ROW[k] to LANE_TOP_ROW[k] + 7.
CHICKEN_TOP_ROW_AT_ZERO, CHICKEN_HEIGHT, CHICKEN_LEFT, CHICKEN_RIGHT = 193, 8, 44, 50
CAR_COLUMN_AT_ZERO, CAR_WIDTH, SCREEN_COLUMNS = 157, 8, 160
LANE_TOP_ROW = {lane: 28 + 16 * (LANES - lane) for lane in range(1, LANES + 1)}
LANE_HEIGHT = 8
# Columns per step, positive to the right: lanes 1-5 drive right, 6-10 left, faster towards the middle.
LANE_SPEED = {1: 0.8, 2: 1.0, 3: 4 / 3, 4: 2.0, 5: 4.0, 6: -4.0, 7: -2.0, 8: -4 / 3, 9: -1.0, 10: -0.8}
CHICKEN_STEP = 4  # rows per UP or DOWN step
# The expert looks this many steps ahead and keeps this many columns between the chicken and any car.
EXPERT_HORIZON, EXPERT_MARGIN = 3, 1
NOOP, UP, DOWN = 0, 1, 2


def _lanes_touched(chicken_y: float) -> list[int]:
    top = CHICKEN_TOP_ROW_AT_ZERO - chicken_y
    bottom = top + CHICKEN_HEIGHT - 1
    return [lane for lane, lane_top in LANE_TOP_ROW.items()
            if not (bottom < lane_top or top > lane_top + LANE_HEIGHT - 1)]


def _columns_until_chicken(lane: int, car_column: int) -> int:
    """Columns the car in ``lane`` still drives before it touches the chicken's columns (0: it touches them now)."""
    car_right = car_column + CAR_WIDTH - 1
    if not (car_right < CHICKEN_LEFT or car_column > CHICKEN_RIGHT):
        return 0
    gap = CHICKEN_LEFT - car_right if LANE_SPEED[lane] > 0 else car_column - CHICKEN_RIGHT
    return gap % SCREEN_COLUMNS


class FreewayTranslator(AtariRamTranslator):
    """Speaks for ``ALE/Freeway-v5``: you are the left chicken, crossing from the bottom pavement to the top."""

    name = "freeway"
    action_names = ("NOOP", "UP", "DOWN")
    action_effects = {"NOOP": "stay where you are", "UP": "step up, towards the far pavement",
                      "DOWN": "step back down"}
    obfuscation_objects = ("walker", *(f"runner{lane}" for lane in range(1, 11)))
    obfuscation_labels = {"chicken_top": "{walker} place", "score": "tally",
                          **{f"lane_{lane}_car": f"{{runner{lane}}} place" for lane in range(1, 11)}}
    obfuscation_axes = {"chicken_top": "rows", **{f"lane_{lane}_car": "columns" for lane in range(1, 11)}}
    obfuscation_words = ("freeway", "Freeway-v5", "TextGym-Freeway-v0", "chicken", "car", "cars", "road", "lane",
                         "lanes", "pavement", "traffic", "cross", "crossing", "left", "right", "up", "down", "row",
                         "rows", "column", "columns")

    def quantities(self, ram: Any) -> dict[str, int]:
        values = {"chicken_top": CHICKEN_TOP_ROW_AT_ZERO - int(ram[CHICKEN_Y]), "score": bcd(ram[SCORE])}
        for lane in range(1, LANES + 1):
            values[f"lane_{lane}_car"] = CAR_COLUMN_AT_ZERO - int(ram[LANE_1_CAR + 1 - lane])
        return values

    def describe(self, obs: Any) -> dict[str, Any]:
        values = self.quantities(obs)
        touched = _lanes_touched(int(obs[CHICKEN_Y]))
        cars = []
        for lane in range(1, LANES + 1):
            column = values[f"lane_{lane}_car"]
            gap = _columns_until_chicken(lane, column)
            cars.append({"lane": lane, "column": column, "gap": gap, "steps": gap / abs(LANE_SPEED[lane])})
        return {**values, "chicken_bottom": values["chicken_top"] + CHICKEN_HEIGHT - 1, "lanes_touched": touched,
                "below_lane_1": values["chicken_top"] > LANE_TOP_ROW[1] + LANE_HEIGHT - 1, "cars": cars}

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "lane_top_rows": LANE_TOP_ROW, "lane_speeds": LANE_SPEED,
                "chicken_left": CHICKEN_LEFT, "chicken_right": CHICKEN_RIGHT, "chicken_step": CHICKEN_STEP}

    def read_observation(self, text: str) -> np.ndarray:
        values = [read_int(r"The chicken covers rows (-?\d+)", text), read_int(r"Score (\d+)", text)]
        for lane in range(1, LANES + 1):
            values.append(read_int(rf"Lane {lane}: car at column (-?\d+)", text))
        if len(re.findall(r"Lane \d+: car", text)) != LANES:
            raise ValueError(f"expected {LANES} lanes in {text!r}")
        return np.array(values, dtype=float)

    def expert_policy(self, env: gym.Env) -> Policy:
        return self.expert_action

    def expert_action(self, ram: Any) -> int:
        """Step up when no car will touch the chicken in the next few steps; else wait, else step back."""
        for action, rows_per_step in ((UP, CHICKEN_STEP), (NOOP, 0), (DOWN, -CHICKEN_STEP)):
            if self._safe(ram, rows_per_step):
                return action
        return NOOP

    def _safe(self, ram: Any, rows_per_step: int) -> bool:
        height = int(ram[CHICKEN_Y])
        cars = self.quantities(ram)
        for step in range(1, EXPERT_HORIZON + 1):
            for lane in _lanes_touched(max(height + rows_per_step * step, 6)):
                column = cars[f"lane_{lane}_car"] + LANE_SPEED[lane] * step
                if any(not (column + CAR_WIDTH - 1 + EXPERT_MARGIN + shift < CHICKEN_LEFT
                            or column - EXPERT_MARGIN + shift > CHICKEN_RIGHT)
                       for shift in (-SCREEN_COLUMNS, 0, SCREEN_COLUMNS)):
                    return False
        return True
