"""HumanAgent: a person plays through a console, reading what a language agent reads.

At reset the person sees the system prompt a language agent gets (the briefing of
:func:`textgym.chat.briefing`: descriptions and the level's knowledge, in the same ``prompts/common/system.j2``);
each step shows the observation text
and the valid actions, and the typed line is read with the same parser as model replies
(``agents.parsing.parse_reply``: ``2``, ``move down``, ``Action: 2`` or ``{"action": "move down"}``; for a
vector action, ``[0.3, -0.1]``, ``thigh: 0.3, leg: -0.1`` or ``{"thigh": 0.3, "leg": -0.1}``).
A line that names no action is counted as an invalid reply and asked again, so a typo never plays the
env's fallback. ``quit`` (or end of input, Ctrl-D) raises :class:`HumanQuit`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, ClassVar, Protocol

from agents.base import Agent, EpisodeContext, EpisodeResult, Transition, render_prompt
from agents.parsing import parse_reply
from textgym.templating import fixed

__all__ = ["HumanAgent", "HumanQuit", "Console", "TerminalConsole", "QUIT_WORDS"]

QUIT_WORDS = frozenset({"quit", "exit", "q"})
HELP_WORDS = frozenset({"help", "?"})


class HumanQuit(BaseException):
    """The person asked to stop (``quit`` or end of input).

    A ``BaseException`` like ``KeyboardInterrupt``: stopping is not a failure of the episode, so code that
    catches ``Exception`` to record failed episodes lets it through and nothing is written for the episode.
    """


class Console(Protocol):
    """Where the person reads and types."""

    def show(self, text: str) -> None:
        """Print ``text`` for the person."""

    async def ask(self, prompt: str) -> str | None:
        """One typed line, or ``None`` at end of input."""


class TerminalConsole:
    """A terminal on stdout and stdin.

    Lines are read in a daemon thread, so the event loop keeps running while the
    person thinks, and Ctrl-C ends the program at once (a pool thread blocked in ``input`` would hold
    the interpreter's exit until Enter).
    """

    def show(self, text: str) -> None:
        """Print ``text`` at once."""
        print(text, flush=True)

    async def ask(self, prompt: str) -> str | None:
        """The line the person types after ``prompt``; ``None`` at end of input."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def deliver(line: str | None) -> None:
            if not answer.done():
                answer.set_result(line)

        def read() -> None:
            try:
                line: str | None = input(prompt)
            except (EOFError, OSError, ValueError):  # end of input, or stdin closed under us
                line = None
            try:
                loop.call_soon_threadsafe(deliver, line)
            except RuntimeError:  # the loop closed while the person was typing
                pass

        threading.Thread(target=read, name="human-input", daemon=True).start()
        return await answer


class HumanAgent(Agent):
    """A person at a console, driven by the runner like any other agent.

    Args:
        llm: unused (a person needs no model); accepted so runners build every agent alike.
        seed: unused.
        console: where to show text and read lines; the terminal by default.
        memory_size: earlier episodes summarised at L3, as for language agents.
    """

    name = "human"
    uses_llm = False
    state_attributes: ClassVar[tuple[str, ...]] = ("experience",)

    def __init__(self, llm: object | None = None, seed: int = 0, console: Console | None = None,
                 memory_size: int = 3) -> None:
        if memory_size < 1:
            raise ValueError(f"memory_size must be >= 1, actually {memory_size}")
        super().__init__(None, seed)
        self.console: Console = console if console is not None else TerminalConsole()
        self.memory_size = memory_size
        self.experience: list[str] = []  # L3: a line per earlier episode, where a language agent keeps notes

    def briefing(self) -> str:
        """What a language agent's system prompt says: descriptions, level knowledge, L3 experience."""
        assert self.context is not None
        context = self.context
        return render_prompt("common/system.j2", briefing=context.briefing(),
                             experience=self.experience if context.self_experience else [])

    def action_menu(self) -> str:
        """The valid actions as a person types them.

        A vector action (one number per actuator) lists each actuator's name and range, in order, and the forms
        the parser reads: a list in that order, ``name: value`` pairs or JSON (``{"name": value, ...}``).
        """
        assert self.context is not None
        spec = self.context.action_spec
        if spec["type"] == "discrete":
            return "Actions: " + " | ".join(f"{number}: {name}" for number, name in enumerate(spec["names"], 1))
        digits = spec.get("digits", 2)
        if spec["type"] == "vector":
            names, lows, highs = spec["names"], spec["low"], spec["high"]
            ranges = " | ".join(f"{name} {fixed(low, digits)} to {fixed(high, digits)}"
                                for name, low, high in zip(names, lows, highs, strict=True))
            zeros = [fixed(min(max(0.0, low), high), digits) for low, high in zip(lows, highs, strict=True)]
            pairs = ", ".join(f"{name}: {zero}" for name, zero in zip(names, zeros, strict=True))
            return (f"Action: one number per actuator, in this order: {ranges}\n"
                    f"Type a list in that order [{', '.join(zeros)}], name: value pairs ({pairs}) or JSON "
                    "{\"name\": value, ...}; each number is clipped to its range.")
        return f"Action: a number from {fixed(spec['low'], digits)} to {fixed(spec['high'], digits)}"

    def typing_hint(self) -> str:
        """How to type an action in this env, shown at the start of each episode."""
        assert self.context is not None
        kind = self.context.action_spec["type"]
        what = {"discrete": "an action's number or name (or JSON)", "vector": "one number per actuator",
                "continuous": "a number (or JSON)"}[kind]
        return f"Type {what}; 'help' shows this again, 'quit' stops."

    async def _reset(self, context: EpisodeContext) -> None:
        rule = "=" * 72
        self.console.show(f"{rule}\nEpisode {context.episode_index + 1} of {context.episodes_total}\n{rule}\n"
                          f"{self.briefing()}\n{rule}\n{self.typing_hint()}")

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        assert self.context is not None
        self.console.show(f"\nStep {len(self.transitions) + 1}. {observation}\n{self.action_menu()}")
        while True:
            line = await self.console.ask("action> ")
            if line is None or line.strip().lower() in QUIT_WORDS:
                raise HumanQuit
            if line.strip().lower() in HELP_WORDS:
                self.console.show(f"{self.briefing()}\n\nStep {len(self.transitions) + 1}. {observation}\n"
                                  f"{self.action_menu()}")
                continue
            if not line.strip():
                continue
            self.last_replies.append(line)  # every line typed for this step, like a model's raw replies
            parsed = parse_reply(line, self.context.action_spec)
            if parsed.action is not None:
                return parsed.action
            self.invalid_replies += 1
            self.console.show(f"Not an action: {line.strip()!r}. {self.action_menu()}")

    def _observe(self, transition: Transition) -> None:
        ending = " The episode is over." if transition.terminated or transition.truncated else ""
        self.console.show(f"-> {transition.action}: reward {fixed(transition.reward, 2)}.{ending}")
        if ending:
            self.console.show(f"Final state: {transition.next_observation}")

    async def _end_episode(self, result: EpisodeResult) -> None:
        self.console.show(f"Episode {result.episode_index + 1}: return {fixed(result.episode_return, 2)} "
                          f"in {result.length} steps.")
        if self.context is not None and self.context.knowledge.get("self_experience") and result.transitions:
            # A person remembers the play itself; the note keeps the outcome in view like a model's memory.
            self.experience.append(f"Episode {result.episode_index + 1}: return {fixed(result.episode_return, 2)} "
                                   f"in {result.length} steps, ending at: {result.transitions[-1].next_observation}")
            self.experience = self.experience[-self.memory_size:]
