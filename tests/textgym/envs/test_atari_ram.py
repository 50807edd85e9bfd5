"""Every RAM address an Atari text names means what the text says: checked against the rendered frame and rewards.

Each game is played with its real ROM (ale-py ships them), rendered as RGB, and the objects are found in the frame by
their colours; the RAM quantities the text is built from must put them where the frame shows them. Sticky actions
are off here (``repeat_action_probability=0``) so that an action's effect can be asserted step by step; everything
else is ALE's v5 default (4 frames per step).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py", reason='the Atari envs need the atari extra: pip install "textgym[atari]"')

from textgym.envs.breakout import BreakoutTranslator  # noqa: E402
from textgym.envs.freeway import LANE_SPEED, LANE_TOP_ROW, FreewayTranslator  # noqa: E402
from textgym.envs.pong import PongTranslator  # noqa: E402
from textgym.wrapper import make_base_env, make_translator  # noqa: E402

PONG_GREEN, PONG_ORANGE, PONG_WHITE = (92, 186, 92), (213, 130, 74), (236, 236, 236)
BREAKOUT_RED = (200, 72, 72)
FREEWAY_YELLOW, FREEWAY_GREY = (252, 252, 84), (142, 142, 142)
FREEWAY_MARKINGS = [(170, 170, 170), (214, 214, 214), FREEWAY_YELLOW, (0, 0, 0)]


def _game(name: str):
    env = make_base_env(name, render_mode="rgb_array", repeat_action_probability=0.0)
    return env, make_translator(name, env)


def _box(frame: np.ndarray, colour, rows=slice(None), columns=slice(None)):
    """(top, bottom, left, right) of the pixels of ``colour`` in the given part of the frame, or ``None``."""
    part = frame[rows, columns]
    ys, xs = np.nonzero(np.all(part == colour, axis=-1))
    if not len(ys):
        return None
    row0, col0 = rows.start or 0, columns.start or 0
    return int(ys.min()) + row0, int(ys.max()) + row0, int(xs.min()) + col0, int(xs.max()) + col0


def _mostly(matches: list[bool], share: float = 0.95) -> None:
    assert matches and np.mean(matches) >= share, f"{np.mean(matches):.3f} of {len(matches)} checks hold"


# ---------------------------------------------------------------------------------------------------- Pong
def test_pong_paddles_ball_speed_and_score_are_where_the_frame_shows_them() -> None:
    env, translator = _game("pong")
    ram, _ = env.reset(seed=0)
    checks = {"paddle": [], "opponent": [], "ball": [], "speed": []}
    ball_rows, points = [], {"score": 0, "opponent_score": 0}
    previous = translator.quantities(ram)
    for step in range(1500):
        # The expert wins points; standing still after step 700 lets the computer win some.
        ram, reward, terminated, truncated, _ = env.step(translator.expert_action(ram) if step < 700 else 0)
        q = translator.quantities(ram)
        frame = env.render()
        field = slice(34, 194)  # between the score and the bottom wall
        paddle, opponent, ball = (_box(frame, PONG_GREEN, field), _box(frame, PONG_ORANGE, field),
                                  _box(frame, PONG_WHITE, field))
        if paddle and paddle[1] - paddle[0] == 15:  # whole paddle on the field
            checks["paddle"].append(abs(paddle[0] - q["paddle_top"]) <= 1 and paddle[2:] == (140, 143))
        if opponent and opponent[1] - opponent[0] == 15:
            checks["opponent"].append(opponent[0] == q["opponent_top"] and opponent[2:] == (16, 19))
        in_play = ram[54] != 0
        assert in_play or ball is None  # a ball the RAM says is out of play is never drawn
        if ball and in_play:
            checks["ball"].append(abs(ball[0] - q["ball_row"]) <= 1 and ball[2] == q["ball_column"])
            ball_rows.append(q["ball_row"])
            if previous["ball_row"] != -14:  # moved for 4 frames at the speed the previous state gave
                checks["speed"].append(q["ball_column"] - previous["ball_column"] == 4 * previous["ball_right_speed"])
        if reward > 0:
            assert q["score"] == previous["score"] + 1
        if reward < 0:
            assert q["opponent_score"] == previous["opponent_score"] + 1
        points["score"] += reward > 0
        points["opponent_score"] += reward < 0
        previous = q
        if terminated:
            break
    for name, results in checks.items():
        _mostly(results, 0.85 if name == "speed" else 0.95)  # bounces change the speed within a step
    assert points["score"] >= 1 and points["opponent_score"] >= 1, points
    # The walls the description names (about rows 34 and 190), give or take the rows the ball moves in a frame.
    assert 28 <= min(ball_rows) <= 36 and 188 <= max(ball_rows) <= 194


def test_pong_right_moves_the_paddle_up_and_left_down() -> None:
    env, translator = _game("pong")
    ram, _ = env.reset(seed=0)
    for action, sign in ((2, -1), (3, 1)):
        for _ in range(3):
            before = translator.quantities(ram)["paddle_top"]
            ram, *_ = env.step(action)
            assert np.sign(translator.quantities(ram)["paddle_top"] - before) == sign, translator.action_names[action]
        for _ in range(8):
            ram, *_ = env.step(0)


# ---------------------------------------------------------------------------------------------------- Breakout
def test_breakout_paddle_ball_score_and_lives_are_where_the_frame_shows_them() -> None:
    env, translator = _game("breakout")
    ram, info = env.reset(seed=0)
    frame = env.render()
    # The wall the description draws: six rows of bricks in rows 57-92, columns 8-151.
    bricks = np.any(frame[:, :, :] != 0, axis=-1) & ~np.all(frame == (142, 142, 142), axis=-1)
    assert bricks[57:93, 8:152].all() and not bricks[93:189, 8:152].any()
    checks = {"paddle": [], "ball": []}
    total, rewards, lives_seen, widths, shrinks_allowed = 0.0, set(), [], [], False
    for _ in range(3000):
        ram, reward, terminated, truncated, info = env.step(translator.expert_action(ram))
        q = translator.quantities(ram)
        frame = env.render()
        paddle = _box(frame, BREAKOUT_RED, slice(189, 193), slice(8, 152))  # the walls beside it are red too
        if paddle and 8 < paddle[2] and paddle[3] < 151:  # not squeezed against a wall
            checks["paddle"].append(paddle[2] == q["paddle_column"])
            widths.append((paddle[3] - paddle[2] + 1, shrinks_allowed))
        ball = _box(frame, BREAKOUT_RED, slice(93, 189))  # below the bricks, above the paddle
        if ball:
            assert ram[101] != 0
            checks["ball"].append(abs(ball[2] - q["ball_column"]) <= 1 and abs(ball[0] - q["ball_row"]) <= 2)
        total += reward
        if reward:
            rewards.add(reward)
        if lives_seen and q["lives"] < lives_seen[-1]:
            shrinks_allowed = False  # a new ball: a full-width paddle again
        shrinks_allowed |= ram[101] != 0 and q["ball_row"] < 57  # the ball got above the bricks
        assert q["score"] == total and q["lives"] == info["lives"]
        lives_seen.append(q["lives"])
        if terminated:
            break
    for results in checks.values():
        _mostly(results)
    assert lives_seen[0] == 5 and min(lives_seen) < 5 and rewards <= {1.0, 4.0, 7.0} and len(rewards) >= 2
    # 16 columns wide; 12 only once the ball has got through to the top, until the next ball (mid-move frames aside).
    assert {width for width, _ in widths} >= {12, 16}
    _mostly([width == 16 for width, allowed in widths if not allowed])
    _mostly([width in (12, 16) for width, _ in widths])


def test_breakout_right_and_left_move_the_paddle() -> None:
    env, translator = _game("breakout")
    ram, _ = env.reset(seed=0)
    for action, sign in ((2, 1), (3, -1)):
        before = translator.quantities(ram)["paddle_column"]
        for _ in range(3):
            ram, *_ = env.step(action)
        assert np.sign(translator.quantities(ram)["paddle_column"] - before) == sign


# ---------------------------------------------------------------------------------------------------- Freeway
def _car_left_columns(frame: np.ndarray) -> dict[int, int | None]:
    columns = {}
    for lane, top in LANE_TOP_ROW.items():
        part = frame[top:top + 8, 8:]
        mask = ~np.all(part == FREEWAY_GREY, axis=-1)
        for colour in FREEWAY_MARKINGS:
            mask &= ~np.all(part == colour, axis=-1)
        xs = np.nonzero(mask.any(axis=0))[0] + 8
        # A car wrapping around the edge shows in two pieces; only whole cars are compared.
        columns[lane] = int(xs.min()) if len(xs) == 8 and xs.max() - xs.min() == 7 else None
    return columns


def test_freeway_chicken_cars_and_score_are_where_the_frame_shows_them() -> None:
    env, translator = _game("freeway")
    ram, _ = env.reset(seed=0)
    checks = {"chicken": [], "cars": [], "speed": []}
    total, pushed_back, previous = 0.0, 0, translator.quantities(ram)
    for _ in range(600):
        ram, reward, terminated, truncated, _ = env.step(1)  # always UP: the chicken gets hit on the way
        q = translator.quantities(ram)
        frame = env.render()
        chicken = frame[:, 44:51].copy()
        chicken[102:105] = 0  # the yellow line in the middle of the road
        rows = np.nonzero(np.all(chicken == FREEWAY_YELLOW, axis=-1).any(axis=1))[0]
        if len(rows) and rows.max() - rows.min() == 7:  # whole, off the line, and not squashed by a car
            checks["chicken"].append(rows.min() == q["chicken_top"])
        for lane, column in _car_left_columns(frame).items():
            if column is not None:
                checks["cars"].append(abs(column - q[f"lane_{lane}_car"]) <= 1)
            moved = (q[f"lane_{lane}_car"] - previous[f"lane_{lane}_car"] + 80) % 160 - 80
            checks["speed"].append(abs(moved - LANE_SPEED[lane]) <= 1)
        if q["chicken_top"] > previous["chicken_top"] and not reward:
            pushed_back += 1  # pressed UP yet moved down: a car hit it
        total += reward
        assert q["score"] == total
        previous = q
    for results in checks.values():
        _mostly(results)
    assert total >= 3 and pushed_back >= 1


def test_freeway_up_and_down_move_the_chicken_four_rows() -> None:
    env, translator = _game("freeway")
    ram, _ = env.reset(seed=0)
    for _ in range(3):
        ram, *_ = env.step(1)
    for action, rows in ((1, -4), (2, 4), (0, 0)):
        before = translator.quantities(ram)["chicken_top"]
        ram, *_ = env.step(action)
        assert translator.quantities(ram)["chicken_top"] - before == rows, translator.action_names[action]


# ---------------------------------------------------------------------------------------------------- all games
@pytest.mark.parametrize("translator_class", [PongTranslator, BreakoutTranslator, FreewayTranslator])
def test_unsupported_settings_are_refused(translator_class) -> None:
    name = translator_class.name
    with pytest.raises(ValueError, match="obs_type='ram'"):
        translator_class(make_base_env(name, obs_type="rgb"))
    with pytest.raises(ValueError, match="minimal action set"):
        translator_class(make_base_env(name, full_action_space=True))
    with pytest.raises(ValueError, match="default mode"):
        translator_class(make_base_env(name, mode=make_base_env(name).unwrapped.ale.getAvailableModes()[-1]))


def test_timing_follows_the_base_kwargs() -> None:
    default = make_translator("pong", make_base_env("pong")).action_description()
    assert "held for 4 frames (one step)" in default and "probability 0.25 (sticky actions)" in default
    other = make_translator("pong", make_base_env("pong", frameskip=2, repeat_action_probability=0.0))
    assert "held for 2 frames (one step)." in other.action_description() and "sticky" not in \
        other.action_description()
