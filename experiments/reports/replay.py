"""textgym-replay: play recorded episodes again through the real env and check that nothing drifted.

    textgym-replay runs/eval/frozenlake-L5-naive                     # every episode of a run dir
    textgym-replay runs/compare seed=0 episode=1                      # every run dir under a folder
    textgym-replay runs/eval/cartpole-L1-exe seed=0 episode=0 gif=true
    textgym-replay runs/eval/cartpole-L1-exe seed=0 episode=0 video=cartpole.mp4

An episode is fully determined by the text env (id, kwargs, level, step limit), its reset seed and the
action texts played. The first three come from the run dir's ``run_identity.json`` (or ``.hydra/config.yaml``),
the reset seed from :func:`experiments.running.episodes.episode_seed` (under the run's protocol: ``same_reset_seed``),
the action texts from ``steps.jsonl``. Each replayed step must give the recorded observation text, parsed action,
invalid-action flag, reward and terminated/truncated flags, and each episode the recorded length and return; the
first difference of an episode is named (step, field, recorded vs replayed) and the command exits 1. A changed
translator, template, action parser or gymnasium version shows up here.

Frames are rendered only on replay (``rgb_array``; nothing is stored at run time): ``gif=true`` writes one
GIF per episode to ``out_dir`` (default ``<run dir>/replay``), ``video=PATH`` (``.gif`` or ``.mp4``) writes
the one selected episode there. MP4 needs PyAV (``pip install 'textgym[video]'``).

Exit codes: 0 every episode matched, 1 some episode drifted, 2 the command could not run (bad option,
no such run dir or seed, a run that records no action texts such as PPO's).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

import textgym
from experiments.cli import exit_on_config_error
from experiments.records.results import (
    ENDED_BY_INVALID_REPLY,
    EPISODES_FILE,
    IDENTITY_FILE,
    STEPS_FILE,
    EpisodeKey,
    iter_jsonl,
    load_episodes,
    run_files,
)
from experiments.running.episodes import episode_seed, jsonable

__all__ = ["ReplayError", "RunSetup", "RecordedRun", "Mismatch", "ReplayResult", "make_run_env", "replay_episode",
           "replay_run", "write_animation", "find_run_dirs", "main"]

# What each replayed step must reproduce: the recorded step field, compared to the replayed value.
CHECKED_STEP_FIELDS = ("observation", "action", "invalid_action", "reward", "terminated", "truncated")
MAX_GIF_FPS = 50  # GIF delays are whole 1/100 s, and browsers play delays under 2/100 s as 1/10 s


class ReplayError(ValueError):
    """The replay cannot run at all (not a drift): a bad run dir, seed, episode or option. One line."""


@dataclass(frozen=True)
class RunSetup:
    """The text env a run's episodes were played on.

    Attributes:
        env: TextGym env name (``conf/env/<env>.yaml``).
        env_kwargs: extra make kwargs (base-task kwargs, few-shot settings, ``max_episode_steps``).
        level: knowledge level.
        max_steps: the runner's step-limit override (``None``: the env's own).
        same_reset_seed: every episode of a stream was reset with episode 0's seed (``protocol=paper``).
    """

    env: str
    env_kwargs: dict[str, Any]
    level: int | None
    max_steps: int | None = None
    same_reset_seed: bool = False

    def reset_seed(self, seed: int, episode: int) -> int:
        """The seed episode ``episode`` of stream ``seed`` was reset with."""
        return reset_seed(seed, episode, self.same_reset_seed)

    def make_kwargs(self) -> dict[str, Any]:
        """``gym.make`` kwargs of the text env, exactly as the runner builds them."""
        kwargs: dict[str, Any] = {} if self.level is None else {"level": self.level}
        kwargs.update(self.env_kwargs)
        if self.max_steps is not None:
            kwargs["max_episode_steps"] = self.max_steps
        return kwargs


def make_run_env(setup: RunSetup, render_mode: str | None = None) -> gym.Env:
    """The text env of ``setup`` (``render_mode="rgb_array"`` for frames)."""
    if render_mode is not None:
        # rgb_array needs no screen; without this pygame (grid worlds, Blackjack) complains about a missing one.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return textgym.wrapper.state_step_limit(
        gym.make(textgym.env_entry(setup.env).text_id, render_mode=render_mode, **setup.make_kwargs()))


def _read_setup(run_dir: Path) -> RunSetup:
    identity_path, hydra_path = run_dir / IDENTITY_FILE, run_dir / ".hydra" / "config.yaml"
    config: dict[str, Any] = {}
    if hydra_path.exists():
        loaded = OmegaConf.to_container(OmegaConf.load(hydra_path), resolve=False)
        config = cast(dict[str, Any], loaded) if isinstance(loaded, dict) else {}
    if identity_path.exists():
        identity = json.loads(identity_path.read_text())
    elif config:
        env = config.get("env") or {}
        identity = {"env": env.get("name"), "env_kwargs": env.get("kwargs") or {}, "level": config.get("level"),
                    "max_steps": config.get("max_steps"), **({"ppo": config["ppo"]} if "ppo" in config else {})}
    else:
        raise ReplayError(f"{run_dir} is not a run dir: it has neither {IDENTITY_FILE} nor .hydra/config.yaml")
    if "ppo" in identity:
        raise ReplayError(f"{run_dir} is a PPO run: PPO acts with numbers and its evaluation keeps no steps or action "
                          f"texts, so there is nothing to replay (language-agent and random runs can be replayed)")
    if not identity.get("env"):
        raise ReplayError(f"{run_dir}: its run settings name no env")
    # The reset-seed rule: the run's identity when it records the protocol, else its Hydra config (textgym-eval).
    protocol = identity.get("protocol") or config.get("protocol") or {}
    same_reset_seed = identity.get("same_reset_seed", protocol.get("same_reset_seed", False))
    return RunSetup(env=identity["env"], env_kwargs=dict(identity.get("env_kwargs") or {}),
                    level=identity.get("level"), max_steps=identity.get("max_steps"),
                    same_reset_seed=bool(same_reset_seed))


@dataclass
class RecordedRun:
    """One run dir's finished episodes and their steps, read once (a viewer replays many episodes of it)."""

    run_dir: Path
    setup: RunSetup
    episodes: list[dict[str, Any]]
    steps: dict[EpisodeKey, list[dict[str, Any]]]

    @classmethod
    def load(cls, run_dir: str | Path) -> RecordedRun:
        """Read ``run_dir``.

        Raises:
            ReplayError: no such dir, not a run dir, a PPO run, or no finished episodes.
        """
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ReplayError(f"no run dir at {run_dir}")
        setup = _read_setup(run_dir)
        # Finished episodes only (failed ones have no steps), from every shard's file of this run dir.
        episodes = load_episodes(run_files(run_dir, EPISODES_FILE))
        if not episodes:
            raise ReplayError(f"{run_dir} holds no finished episodes (no {EPISODES_FILE} rows)")
        steps: dict[EpisodeKey, list[dict[str, Any]]] = defaultdict(list)
        for file in run_files(run_dir, STEPS_FILE):
            for row in iter_jsonl(file):
                steps[EpisodeKey.of(row)].append(row)
        return cls(run_dir, setup, episodes, dict(steps))

    def select(self, seed: int | None = None, episode: int | None = None) -> list[dict[str, Any]]:
        """Episode rows of ``seed`` and ``episode`` (``None``: all), in file order.

        Raises:
            ReplayError: nothing matches; the message lists what the run has.
        """
        rows = [r for r in self.episodes if seed is None or int(r["seed"]) == seed]
        if not rows:
            seeds = sorted({int(r["seed"]) for r in self.episodes})
            raise ReplayError(f"seed {seed} is not in {self.run_dir}: its seeds are {seeds}")
        selected = [r for r in rows if episode is None or int(r["episode"]) == episode]
        if not selected:
            numbers = sorted({int(r["episode"]) for r in rows})
            stream = f" of seed {seed}" if seed is not None else ""
            raise ReplayError(f"episode {episode}{stream} is not in {self.run_dir}: its episodes are {numbers}")
        return selected

    def step_records(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """The recorded steps of episode ``row``, in order.

        Raises:
            ReplayError: the episode has steps but none are recorded (e.g. PPO rows).
        """
        steps = sorted(self.steps.get(EpisodeKey.of(row), []), key=lambda s: int(s["step"]))
        if not steps and int(row["steps"]) > 0:
            raise ReplayError(f"{self.run_dir}: {_label(row)} has {row['steps']} steps but none in {STEPS_FILE} "
                              f"(agent {row['agent']!r} records no action texts), so it cannot be replayed")
        return steps


@dataclass(frozen=True)
class Mismatch:
    """The first difference between a recording and its replay.

    Attributes:
        step: index of the step (0-based, as in ``steps.jsonl``); ``None`` for the episode as a whole.
        field: which recorded value differs (``observation``, ``reward``, ``terminated``, ``steps``, ...).
        recorded: the value in the run dir.
        replayed: the value the env gives now.
    """

    step: int | None
    field: str
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        where = f"step {self.step}" if self.step is not None else "episode"
        recorded, replayed = self.recorded, self.replayed
        if isinstance(recorded, str) and isinstance(replayed, str):
            # Long texts: show where they start to differ rather than two walls of text.
            first = next((i for i, (a, b) in enumerate(zip(recorded, replayed, strict=False)) if a != b),
                         min(len(recorded), len(replayed)))
            start = max(0, first - 40)
            return (f"{where}: {self.field} differs from character {first}: recorded "
                    f"{_short(recorded[start:start + 120])}, replayed {_short(replayed[start:start + 120])}")
        return f"{where}: {self.field} recorded {_short(recorded)}, replayed {_short(replayed)}"


@dataclass
class ReplayResult:
    """One replayed episode.

    Attributes:
        key: the episode's identity (env, level, agent, seed, episode, llm_model).
        reset_seed: the seed ``env.reset`` got.
        steps: steps replayed (up to and including a mismatch).
        episode_return: sum of the replayed rewards.
        mismatch: the first difference, ``None`` when the replay matches the recording.
        fps: the env's ``render_fps`` (a natural playback speed for the frames).
        observations: replayed observation texts: the one before each step, then the final one.
        frames: with ``frames=True``, ``rgb_array`` images (H x W x 3 uint8): ``frames[i]`` shows the state
            that ``observations[i]`` describes, i.e. before step ``i``; the last frame the final state.
    """

    key: EpisodeKey
    reset_seed: int
    steps: int = 0
    episode_return: float = 0.0
    mismatch: Mismatch | None = None
    fps: float = 10.0
    observations: list[str] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the replay matched its recording."""
        return self.mismatch is None


def reset_seed(seed: int, episode: int, same_reset_seed: bool = False) -> int:
    """The reset seed an episode was played with: :func:`experiments.running.episodes.episode_seed`, the runner's rule.

    Prefer :meth:`RunSetup.reset_seed`, which knows the run's protocol.
    """
    # Only passed when set: the rule without the protocol argument stays callable the same way.
    return episode_seed(seed, episode, same_reset_seed=True) if same_reset_seed else episode_seed(seed, episode)


def replay_episode(run: str | Path | RecordedRun, seed: int, episode: int, frames: bool = False) -> ReplayResult:
    """Replay episode ``episode`` of stream ``seed`` of a run dir and compare it with the recording.

    Args:
        run: the run dir, or a :class:`RecordedRun` already loaded (cheaper for many episodes).
        seed: the stream's seed, as in ``episodes.jsonl``.
        episode: the episode index within the stream.
        frames: also render ``rgb_array`` frames (one before each step and one at the end).

    Returns:
        The replay, with ``mismatch`` set on drift. Stops at the first mismatch.

    Raises:
        ReplayError: the episode is not in the run, or the run cannot be replayed.
    """
    recorded = run if isinstance(run, RecordedRun) else RecordedRun.load(run)
    (row,) = recorded.select(seed, episode)[:1]
    return _replay(recorded, row, frames)


def replay_run(run: str | Path | RecordedRun, seed: int | None = None, episode: int | None = None,
               frames: bool = False) -> Iterator[ReplayResult]:
    """Replay every finished episode of a run dir (or those of ``seed`` / ``episode``), in file order."""
    recorded = run if isinstance(run, RecordedRun) else RecordedRun.load(run)
    for row in recorded.select(seed, episode):
        yield _replay(recorded, row, frames)


def _replay(recorded: RecordedRun, row: dict[str, Any], frames: bool) -> ReplayResult:
    steps = recorded.step_records(row)
    key = EpisodeKey.of(row)
    result = ReplayResult(key=key, reset_seed=recorded.setup.reset_seed(key.seed, key.episode))
    env = make_run_env(recorded.setup, render_mode="rgb_array" if frames else None)
    result.fps = float(env.metadata.get("render_fps") or result.fps)
    try:
        obs, _ = env.reset(seed=result.reset_seed)
        result.observations.append(obs)
        _add_frame(env, result, frames)
        done = False
        for index, step in enumerate(steps):
            if int(step["step"]) != index:
                result.mismatch = Mismatch(index, "step", step["step"], index)
                return result
            if done:
                result.mismatch = Mismatch(index, "steps", f"a step after {index}", "the episode already ended")
                return result
            next_obs, reward, terminated, truncated, info = env.step(step["action_text"])
            replayed = {"observation": obs, "action": jsonable(info["action"]),
                        "invalid_action": bool(info["invalid_action"]), "reward": float(reward),
                        "terminated": bool(terminated), "truncated": bool(truncated)}
            result.steps += 1
            result.episode_return += float(reward)
            obs, done = next_obs, bool(terminated or truncated)
            result.observations.append(obs)
            _add_frame(env, result, frames)
            for name in CHECKED_STEP_FIELDS:
                if name in step and step[name] != replayed[name]:
                    result.mismatch = Mismatch(index, name, step[name], replayed[name])
                    return result
        # A rollout with invalid_action=terminate ends on a reply, after its last env step: the env goes on.
        ended_by_reply = (row.get("notes") or {}).get("ended_by") == ENDED_BY_INVALID_REPLY
        if not done and not ended_by_reply:
            result.mismatch = Mismatch(None, "ended", f"after {len(steps)} steps", "the episode goes on")
        elif done and ended_by_reply:
            result.mismatch = Mismatch(None, "ended", f"by an invalid reply after {len(steps)} steps",
                                       "the env ended it")
        elif result.steps != int(row["steps"]):
            result.mismatch = Mismatch(None, "steps", int(row["steps"]), result.steps)
        elif not np.isclose(result.episode_return, float(row["return"]), rtol=1e-9, atol=1e-9):
            # A sum over many float rewards may differ in the last digit from the recorded running sum.
            result.mismatch = Mismatch(None, "return", row["return"], result.episode_return)
        return result
    finally:
        env.close()


def _add_frame(env: gym.Env, result: ReplayResult, frames: bool) -> None:
    if not frames:
        return
    frame = env.render()
    if frame is None:
        raise ReplayError(f"{result.key.env} renders no rgb_array frames")
    result.frames.append(np.asarray(frame, dtype=np.uint8))


def write_animation(frames: Sequence[np.ndarray], path: str | Path, fps: float) -> Path:
    """Write ``frames`` as an animated GIF (Pillow) or an MP4 (PyAV), chosen by the file's suffix.

    Raises:
        ReplayError: no frames, an unknown suffix, or MP4 without PyAV installed.
    """
    import imageio.v3 as iio  # imported here: only frame-writing replays need it

    path = Path(path)
    if not frames:
        raise ReplayError(f"no frames to write to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        fps = min(fps, MAX_GIF_FPS)
        iio.imwrite(path, np.stack(frames), extension=".gif", duration=round(1000 / fps), loop=0)
    elif suffix == ".mp4":
        try:
            import av  # noqa: F401  (imageio's pyav plugin needs it)
        except ImportError as error:
            raise ReplayError("writing MP4 needs PyAV: pip install 'textgym[video]' (or write a .gif)") from error
        # H.264 wants even sides; pad by one pixel where needed (most gymnasium renders are even already).
        height, width = frames[0].shape[:2]
        pad = ((0, height % 2), (0, width % 2), (0, 0))
        iio.imwrite(path, np.stack([np.pad(f, pad, mode="edge") for f in frames]), plugin="pyav",
                    codec="libx264", fps=round(fps), out_pixel_format="yuv420p")
    else:
        raise ReplayError(f"video={path}: the file must end in .gif or .mp4")
    return path


def find_run_dirs(path: str | Path) -> list[Path]:
    """``path`` itself when it is a run dir, else every run dir below it (dirs with an episodes file)."""
    path = Path(path)
    if not path.exists():
        raise ReplayError(f"no run dir at {path}")
    if run_files(path, EPISODES_FILE) or (path / IDENTITY_FILE).exists():
        return [path]
    found = sorted({file.parent for file in path.rglob(f"{Path(EPISODES_FILE).stem}*.jsonl")
                    if run_files(file.parent, EPISODES_FILE)})
    if not found:
        raise ReplayError(f"no run dirs under {path} (no {EPISODES_FILE} found)")
    return found


# ---- command line -------------------------------------------------------------------------------------------


@dataclass
class ReplayOptions:
    """``textgym-replay`` options (``key=value``)."""

    run_dir: str | None = None  # also the first bare argument
    seed: int | None = None  # only this stream
    episode: int | None = None  # only this episode index (of every selected stream)
    gif: bool = False  # write <out_dir>/<stream>__ep<k>.gif for each replayed episode
    video: str | None = None  # write the one selected episode to this .gif or .mp4
    out_dir: str | None = None  # where gif=true writes; default <run dir>/replay
    fps: float | None = None  # frames per second; default the env's render_fps


def parse_options(argv: Sequence[str]) -> ReplayOptions:
    """``RUN_DIR key=value ...`` -> options, with a one-line error for anything else."""
    bare = [a for a in argv if "=" not in a]
    if len(bare) > 1:
        raise ReplayError(f"one run dir at a time, got {bare}; select episodes with seed=S episode=K")
    names = [f.name for f in fields(ReplayOptions)]
    try:
        options = OmegaConf.merge(OmegaConf.structured(ReplayOptions),
                                  OmegaConf.from_dotlist([a for a in argv if "=" in a]))
    except ConfigKeyError as error:
        raise ReplayError(f"unknown option {error.key!r}: the options are {', '.join(names)}") from error
    except OmegaConfBaseException as error:
        raise ReplayError(f"{error.full_key}: {str(error).splitlines()[0]}") from error
    result = ReplayOptions(**OmegaConf.to_container(options))  # type: ignore[arg-type]  # a mapping's: a dict
    if bare:
        if result.run_dir is not None:
            raise ReplayError(f"two run dirs given: {bare[0]} and run_dir={result.run_dir}")
        result.run_dir = bare[0]
    if result.run_dir is None:
        raise ReplayError("usage: textgym-replay RUN_DIR [seed=S] [episode=K] [gif=true] [video=PATH.gif|.mp4] "
                          "[out_dir=DIR] [fps=N]")
    for name in ("seed", "episode"):
        value = getattr(result, name)
        if value is not None and value < 0:
            raise ReplayError(f"{name} must be >= 0, got {value}")
    if result.fps is not None and result.fps <= 0:
        raise ReplayError(f"fps must be > 0, got {result.fps}")
    if result.video is not None and Path(result.video).suffix.lower() not in (".gif", ".mp4"):
        raise ReplayError(f"video={result.video}: the file must end in .gif or .mp4")
    return result


def _label(row: dict[str, Any] | EpisodeKey) -> str:
    key = row if isinstance(row, EpisodeKey) else EpisodeKey.of(row)
    level = f" L{key.level}" if key.level is not None else ""
    model = f" ({key.llm_model})" if key.llm_model else ""
    return f"{key.env}{level} {key.agent}{model} seed {key.seed} episode {key.episode}"


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def run(options: ReplayOptions, out: Any = sys.stdout, err: Any = sys.stderr) -> int:
    """Replay what ``options`` select; print one line per episode; return the exit code."""
    assert options.run_dir is not None
    run_dirs = find_run_dirs(options.run_dir)
    recorded_runs: list[RecordedRun] = []
    for run_dir in run_dirs:
        try:
            recorded_runs.append(RecordedRun.load(run_dir))
        except ReplayError as error:
            if len(run_dirs) == 1:
                raise
            print(f"skipped {error}", file=out)
    selections = []
    for recorded in recorded_runs:
        try:
            selections.append((recorded, recorded.select(options.seed, options.episode)))
        except ReplayError:
            if len(recorded_runs) == 1:
                raise
    if not selections:
        raise ReplayError(f"no replayable episodes under {options.run_dir} for seed={options.seed} "
                          f"episode={options.episode}")
    total = sum(len(rows) for _, rows in selections)
    if options.video is not None and total != 1:
        raise ReplayError(f"video= writes one episode but {total} are selected: add seed=S episode=K "
                          f"(or use gif=true for one GIF per episode)")
    want_frames = options.gif or options.video is not None
    drifted = 0
    for recorded, rows in selections:
        for row in rows:
            where = f"{recorded.run_dir}: {_label(row)}"
            try:
                result = _replay(recorded, row, want_frames)
            except ReplayError:
                raise
            except Exception as error:  # the env no longer builds or steps as recorded: drift too
                drifted += 1
                print(f"DRIFT {where}: the env failed: {type(error).__name__}: {error}", file=err)
                continue
            if not result.ok:
                drifted += 1
                print(f"DRIFT {where} (reset seed {result.reset_seed}) {result.mismatch}", file=err)
                continue
            line = f"ok {where}: {result.steps} steps, return {result.episode_return:g}"
            if want_frames:
                fps = options.fps or result.fps
                targets = [Path(options.video)] if options.video is not None else []
                if options.gif:
                    out_dir = Path(options.out_dir) if options.out_dir else recorded.run_dir / "replay"
                    targets.append(out_dir / f"{result.key.stream}__ep{result.key.episode}.gif")
                for target in targets:
                    write_animation(result.frames, target, fps)
                    line += f" -> {target} ({len(result.frames)} frames)"
            print(line, file=out, flush=True)
    if drifted:
        print(f"{drifted} of {total} episodes drifted from their recording", file=err)
        return 1
    print(f"all {total} episodes match their recording" if total > 1 else "the episode matches its recording",
          file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: ``textgym-replay RUN_DIR [key=value ...]``."""
    try:
        code = run(parse_options(sys.argv[1:] if argv is None else argv))
    except ReplayError as error:
        exit_on_config_error("textgym-replay", error)  # one line, exit 2, as every textgym-* command
    sys.exit(code)


if __name__ == "__main__":
    main()
