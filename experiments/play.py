"""textgym-play: play a text env yourself in the terminal, scored like any agent.

    textgym-play env=frozenlake level=5
    textgym-play env=frozenlake level=5 env.kwargs.is_slippery=false seed=3 episodes=2
    textgym-play env=cartpole level=1 max_steps=50 results_dir=runs

You are the agent ``human`` (agents/human.py): you read the same reset information, descriptions, level
knowledge and observation texts a language agent reads, see the valid actions, and type an action the way a
model replies (``2``, ``move down``, ``Action: 2`` or ``{"action": "move down"}``; the same parser reads it).
Episodes are played by ``experiments.running.episodes.run_episode`` and written by
``experiments.records.results.ResultsWriter`` into ``<results_dir>/eval/<env>-L<level>-human``, the layout and row
schema of ``textgym-eval``, so ``textgym-report results=[runs/eval]`` puts your score beside the models' and
``textgym-replay`` replays it.

``quit``, Ctrl-D or Ctrl-C stops at once; an unfinished episode is not written (finished ones are kept).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import textgym
from agents.human import HumanAgent, HumanQuit, TerminalConsole
from experiments.cli import guard_job, hydra_command
from experiments.config import agent_class, agent_name, register_resolvers, validate_eval
from experiments.records.results import EpisodeKey, ResultsWriter
from experiments.reports.replay import RunSetup, make_run_env, reset_seed
from experiments.run_agent import run_identity
from experiments.running.episodes import run_episode
from experiments.running.streams import agent_episode_row
from experiments.variants import fold_obfuscation, obfuscation_seed

__all__ = ["PlayError", "play", "first_open_seed", "main"]

register_resolvers()


def say(text: str) -> None:
    """Print ``text`` for the person, its paragraphs wrapped between words at the terminal's width."""
    width = max(20, shutil.get_terminal_size().columns - 1)  # a full last column would move the cursor on
    print("\n".join(_wrap(line, width) for line in text.splitlines()), flush=True)


class WrappingConsole(TerminalConsole):
    """The terminal, with paragraphs wrapped at its width (between words) instead of broken at its edge."""

    def show(self, text: str) -> None:
        say(text)


def _wrap(line: str, width: int) -> str:
    """``line`` wrapped at ``width``, its indentation kept on every piece (a rule or a menu stays one line if short)."""
    if len(line) > width and len(set(line)) == 1:  # a rule (=====): as wide as the terminal
        return line[:width]
    indent = line[: len(line) - len(line.lstrip())]
    return textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or line


class PlayError(ValueError):
    """Nothing can be played as asked (one line for the person)."""


def _same_reset_seed(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "protocol.same_reset_seed", default=False))


def first_open_seed(writer: ResultsWriter, keys_of: Any) -> int:
    """The smallest seed whose stream still has an episode to play in ``writer``'s run dir."""
    seed = 0
    while all(writer.is_done(key) for key in keys_of(seed)):
        seed += 1
    return seed


async def _play_stream(cfg: DictConfig, writer: ResultsWriter, seed: int, todo: list[EpisodeKey],
                       keys: list[EpisodeKey]) -> None:
    env_id = textgym.env_entry(cfg.env.name).text_id
    name = agent_name(cfg.agent._target_)
    env = make_run_env(RunSetup(cfg.env.name, OmegaConf.to_container(cfg.env.kwargs, resolve=True),  # type: ignore[arg-type]  # a dict
                                cfg.level, cfg.max_steps))
    agent_options = {"console": WrappingConsole()} if issubclass(agent_class(cfg.agent._target_), HumanAgent) else {}
    agent = instantiate(cfg.agent)(llm=None, seed=seed, **agent_options)
    if todo[0].episode > 0:  # continue the stream with what the earlier episodes left (L3 summaries)
        state = writer.load_state(keys[todo[0].episode - 1])
        if state is not None:
            agent.load_state(state)
    # protocol=paper: every episode of the stream resets like episode 0 (passed only when set, see replay.reset_seed).
    protocol: dict[str, Any] = {"same_reset_seed": True} if _same_reset_seed(cfg) else {}
    try:
        for key in todo:
            record = await run_episode(env, agent, seed, key.episode, cfg.episodes, **protocol)
            writer.write_episode(agent_episode_row(cfg, env_id, name, None, record), record.step_records,
                                 agent.state())
            say(f"Saved episode {key.episode} of seed {seed} (return {record.episode_return:g}, {record.steps} steps) "
                f"to {writer.episodes_path}")
    finally:
        env.close()


def play(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Let a person play the episodes ``cfg`` asks for into ``run_dir``; returns the episodes file.

    Raises:
        PlayError: the chosen seed's episodes are all played already.
        HumanQuit: the person stopped (finished episodes are saved).
    """
    seed = cfg.seed
    validate_eval(OmegaConf.create({"level": cfg.level, "seeds": [0 if seed is None else seed],
                                    "episodes": cfg.episodes, "concurrency": 1, "max_steps": cfg.max_steps}))
    fold_obfuscation(cfg)  # obfuscate=true: the obfuscated variant's env kwargs (experiments/variants.py)
    textgym.env_entry(cfg.env.name)  # an unknown env -> the list of known ones
    writer = ResultsWriter(run_dir, identity=run_identity(cfg))
    name = agent_name(cfg.agent._target_)

    def keys_of(stream_seed: int) -> list[EpisodeKey]:
        return [EpisodeKey(cfg.env.name, cfg.level, name, stream_seed, k,
                           obfuscation_seed=obfuscation_seed(cfg.env.kwargs)) for k in range(cfg.episodes)]

    if seed is None:
        seed = first_open_seed(writer, keys_of)
    keys = keys_of(seed)
    todo = [key for key in keys if not writer.is_done(key)]
    if not todo:
        raise PlayError(f"every episode of seed {seed} is already played in {writer.run_dir}: pass another seed=, "
                        f"or leave seed unset to take the next free one")
    first = todo[0].episode
    episodes = f"episode {first}" if first == cfg.episodes - 1 else f"episodes {first}-{cfg.episodes - 1}"
    say(f"You play {cfg.env.name} at level {cfg.level} as agent '{name}': seed {seed}, {episodes} (reset seed "
        f"{reset_seed(seed, first, _same_reset_seed(cfg))} first). Results: {writer.run_dir}")
    asyncio.run(_play_stream(cfg, writer, seed, todo, keys))
    return writer.episodes_path


@hydra.main(version_base="1.3", config_path="../conf", config_name="play")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    try:
        guard_job("textgym-play", cfg, lambda: play(cfg, run_dir), run_dir)  # bad values: one line, exit 2
    except HumanQuit:
        say(f"\nStopped. The unfinished episode was not saved; finished ones are in {run_dir}.")
    except KeyboardInterrupt:
        say(f"\nInterrupted. The unfinished episode was not saved; finished ones are in {run_dir}.")
        sys.exit(130)


def main() -> None:
    """Console entry point: ``textgym-play env=NAME level=N`` (``--help`` explains the keys)."""
    try:
        import readline  # noqa: F401  (line editing and history for input(); absent on some platforms)
    except ImportError:
        pass
    hydra_command("textgym-play", _hydra_main, "play")


if __name__ == "__main__":
    main()
