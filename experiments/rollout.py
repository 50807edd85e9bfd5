"""textgym-rollout: ``n`` rollouts per seed of a TextGym task as a chat, against any OpenAI-compatible server.

    textgym-rollout env=cartpole level=1 llm=server llm.model=my-model seeds=[0,1,2,3] n=8 concurrency=64
    textgym-rollout env=frozenlake level=5 llm=local chat.action_format=strict chat.invalid_action=retry:2

The data an RL trainer (GRPO and friends) needs from sampled episodes, from code (:func:`rollouts`,
:func:`play_rollouts`) or as a command writing a run dir. Each rollout is one :class:`~textgym.chat.ChatEnv`
episode (``chat.*``: ``action_format``, ``invalid_action``, ``format_penalty``, ``history``) whose every turn is one
request through :class:`~agents.llm.client.LLMClient` (its retries and failure handling; never its response cache,
as every request is a sample). The ``n`` rollouts of a seed (a GRPO group) all reset with that seed's reset seed,
``seed * 1000`` (episode 0 of ``textgym-eval``'s stream ``seed``), so they start from the same state; each asks
with its own sampling seed, so they differ.

A rollout (:class:`Rollout`) holds the whole conversation, every turn's reply and reward (penalties included), the
sampled tokens' ids and logprobs where the server gives them (``logprobs: true``: OpenAI, vLLM, llama.cpp), and the
episode's return. The command writes rollouts as ``textgym-eval`` writes episodes (``experiments/records/results.py``,
``experiments/records/transcripts.py``): ``episodes.jsonl`` (agent ``rollout``, episode = the rollout's index in its
group, ``return`` the env's rewards; ``notes`` hold the per-turn rewards, the return with penalties and the
normalized return), ``steps.jsonl`` (one line per env step, its turns with tokens and logprobs) and the calls'
transcript, so ``textgym-replay``, ``textgym-report`` and ``textgym-view`` read them unchanged. A rollout whose
LLM calls fail for good is a ``status: "failed"`` row with its reason; the others go on. Rerunning the command
resumes: finished rollouts are kept, failed and missing ones are played.

``action_format=tool`` is refused: the client returns reply texts, not tool calls (serve tool-calling trainers with
``textgym-serve`` or the TRL integration). An episode ended by ``invalid_action=terminate`` ends outside the env,
so ``textgym-replay`` reports it as unfinished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from agents.llm.client import LLMClient
from agents.llm.protocol import Usage
from experiments.cli import hydra_command, run_async, run_job, stop_on_signals
from experiments.config import quiet_libraries, register_resolvers, save_run_config
from experiments.records.results import (
    DONE,
    ENDED_BY_INVALID_REPLY,
    FAILED,
    EpisodeKey,
    ResultSink,
    ResultsWriter,
    episode_row,
    error_text,
)
from experiments.records.transcripts import EpisodeCalls, tag_calls
from experiments.run_agent import LLM_IDENTITY_KEYS, EvalOutcome
from experiments.running.episodes import EPISODES_PER_SEED, episode_seed
from experiments.running.llm_session import llm_session
from experiments.running.progress import RunProgress
from experiments.running.streams import usage_fields
from experiments.serve import chat_kwargs
from experiments.variants import fold_obfuscation, obfuscation_seed
from textgym.chat import ChatEnv, Message, action_json_schema, parse_strict_reply
from textgym.registration import env_entry

__all__ = ["AGENT", "Turn", "Rollout", "RolloutSettings", "play_rollouts", "rollouts", "run_rollouts", "main"]

logger = logging.getLogger(__name__)
register_resolvers()

AGENT = "rollout"
"""The ``agent`` of rollout rows in ``episodes.jsonl``."""
TEXT_FORMATS = ("lenient", "strict")


@dataclass
class Turn:
    """One reply of the model and what the env made of it.

    Attributes:
        reply: the model's text.
        reward: the turn's reward: the env's reward less the format penalty of an invalid reply (a turn that
            played no step gets only the penalty).
        invalid: the reply named no valid action in the action format.
        env_step: the index of the env step it played; ``None`` when it played none (a retry's correction, or
            ``invalid_action=terminate``).
        token_ids: the sampled tokens' ids, where the server gives them (llama.cpp, vLLM), else ``None``.
        logprobs: the sampled tokens' logprobs, where the server gives them, else ``None``.
    """

    reply: str
    reward: float
    invalid: bool
    env_step: int | None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The turn as plain data (a ``steps.jsonl`` line's ``turns`` item)."""
        return dataclasses.asdict(self)


@dataclass
class Rollout:
    """One episode of a seed's group.

    Attributes:
        seed: the group's seed.
        index: the rollout's index in its group (its ``episode`` in the result files).
        reset_seed: the seed the env was reset with (the same for every rollout of the group).
        status: ``"done"`` or ``"failed"`` (its LLM calls failed for good; ``error`` says why).
        messages: the whole conversation: the system briefing, the env's turns and the replies, in order.
        turns: every reply, with its reward, tokens and logprobs.
        steps: env steps played.
        env_return: the env's rewards summed (``textgym-eval``'s return).
        terminated: the env ended the episode (not the step limit or an invalid reply).
        truncated: the step limit (or ``invalid_action=terminate``) ended it.
        ended_by_invalid_reply: ``invalid_action=terminate`` ended it, after its last env step (replay checks that).
        normalized_return: the env return with random 0 and expert 1, where TextGym has both anchors.
        usage: the tokens, calls and dollars it cost.
        wall_time_s: how long it took.
        error: why it failed (``"<type>: <message>"``), else ``None``.
    """

    seed: int
    index: int
    reset_seed: int
    status: str = DONE
    messages: list[Message] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    steps: int = 0
    env_return: float = 0.0
    terminated: bool = False
    truncated: bool = False
    ended_by_invalid_reply: bool = False
    normalized_return: float | None = None
    usage: Usage = field(default_factory=Usage)
    wall_time_s: float = 0.0
    error: str | None = None

    @property
    def step_rewards(self) -> list[float]:
        """Every turn's reward, in order (what per-turn credit assignment reads)."""
        return [turn.reward for turn in self.turns]

    @property
    def episode_return(self) -> float:
        """The sum of the turns' rewards: the env return less the format penalties."""
        return float(sum(self.step_rewards))

    @property
    def invalid_replies(self) -> int:
        """Replies that named no valid action (``invalid_replies`` of its ``episodes.jsonl`` row)."""
        return sum(turn.invalid for turn in self.turns)


@dataclass(frozen=True)
class RolloutSettings:
    """How each rollout asks the model.

    Args:
        temperature: sampling temperature (``None``: the client's default).
        max_tokens: completion budget per reply (``None``: the client's default).
        constrained: send the action's JSON schema as ``response_format`` (a server that honours it always
            returns a valid action, as the ``naive`` agent asks); the lenient and strict formats both read it.
        logprobs: ask for the sampled tokens' logprobs (and ids, where the server gives them).
    """

    temperature: float | None = None
    max_tokens: int | None = None
    constrained: bool = False
    logprobs: bool = True


def _check(env: str, level: int, seeds: list[int], n: int, concurrency: int, chat: dict[str, Any]) -> ChatEnv:
    """Refuse bad settings in one line each, before anything runs; returns a ChatEnv built with them."""
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= EPISODES_PER_SEED:
        raise ValueError(f"n (rollouts per seed) must be an int from 1 to {EPISODES_PER_SEED}, got {n!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if chat.get("action_format", "lenient") not in TEXT_FORMATS:
        raise ValueError(f"action_format {chat.get('action_format')!r} is not for rollouts: the client returns reply "
                         f"texts, so use {' or '.join(TEXT_FORMATS)} (tool calls: textgym-serve or the TRL "
                         f"integration)")
    return ChatEnv(env, level, **chat)  # an unknown env, level 3 or a bad chat option fails here


def _tokens(token_logprobs: list[dict[str, Any]] | None) -> tuple[list[int] | None, list[float] | None]:
    if token_logprobs is None:
        return None, None
    ids = [token["id"] for token in token_logprobs if "id" in token]
    return (ids if len(ids) == len(token_logprobs) else None), [token["logprob"] for token in token_logprobs]


class _Player:
    """Plays one rollout through its own client (its own sampling seed; the shared transport and counters)."""

    def __init__(self, client: LLMClient, env: str, level: int, chat: dict[str, Any], settings: RolloutSettings,
                 action_spec: dict[str, Any]) -> None:
        self.client, self.env, self.level, self.chat, self.settings = client, env, level, chat, settings
        self.action_spec = action_spec
        self.json_schema = action_json_schema(action_spec) if settings.constrained else None
        self.strict = chat.get("action_format", "lenient") == "strict"

    def _client_for(self, seed: int, index: int) -> LLMClient:
        sampling = self.client.sampling
        if sampling.seed is not None:  # distinct across a group's rollouts and across groups
            sampling = dataclasses.replace(sampling, seed=sampling.seed + episode_seed(seed, index))
        return LLMClient(self.client.model, self.client.transport, sampling=sampling, retry=self.client.retry,
                         cache=None, price_per_million=self.client.prices)

    async def play(self, seed: int, index: int) -> tuple[Rollout, list[dict[str, Any]], EpisodeCalls]:
        """The rollout, its ``steps.jsonl`` lines and its calls (a failed one: what it got through)."""
        rollout = Rollout(seed, index, episode_seed(seed, 0, same_reset_seed=True))
        own = self._client_for(seed, index)
        calls = EpisodeCalls()
        records: list[dict[str, Any]] = []
        started = time.perf_counter()
        chat = ChatEnv(self.env, self.level, **self.chat)
        try:
            messages, info = chat.reset(seed=rollout.reset_seed)
            rollout.messages = list(messages)
            observation = info["observation"]
            step_turns: list[Turn] = []  # this env step's turns so far (a retry's corrections, then the played one)
            step_started = own.usage  # what was spent before this env step's first turn
            done = False
            while not done:
                completion = await own.complete(
                    chat.messages, json_schema=self.json_schema, temperature=self.settings.temperature,
                    max_tokens=self.settings.max_tokens, session=(seed, index), logprobs=self.settings.logprobs)
                calls.add(tag_calls(completion.records, "step", rollout.steps))
                reply = completion.text
                new_messages, reward, terminated, truncated, info = chat.step(reply)
                done = terminated or truncated
                rollout.messages += [{"role": "assistant", "content": reply}, *new_messages]
                played = info["env_action"] is not None
                token_ids, logprobs = _tokens(completion.token_logprobs[0] if completion.token_logprobs else None)
                turn = Turn(reply, float(reward), bool(info["invalid_action"]), rollout.steps if played else None,
                            token_ids, logprobs)
                rollout.turns.append(turn)
                step_turns.append(turn)
                if played:
                    records.append(self._step_record(rollout.steps, observation, reply, info, step_turns,
                                                     own.usage - step_started, terminated, truncated))
                    observation, step_turns, step_started = info["observation"], [], own.usage
                    rollout.steps += 1
                    rollout.env_return += float(info["env_reward"])
            rollout.terminated, rollout.truncated = bool(terminated), bool(truncated)
            rollout.ended_by_invalid_reply = not played  # the last reply ended it without an env step
            rollout.normalized_return = info.get("normalized_return")
        except Exception as error:  # noqa: BLE001 - whatever the client raised ends this rollout only
            rollout.status, rollout.error = FAILED, error_text(error)
        finally:
            chat.close()
            rollout.usage = own.usage
            rollout.wall_time_s = time.perf_counter() - started
            self.client.usage += own.usage  # the caller's client adds up what every rollout spent
            self.client.retries.update(own.retries)
            self.client.failures += own.failures
        return rollout, records, calls

    def _step_record(self, step: int, observation: str, reply: str, info: dict[str, Any], turns: list[Turn],
                     usage: Usage, terminated: bool, truncated: bool) -> dict[str, Any]:
        """A ``steps.jsonl`` line in ``textgym-eval``'s fields, plus the turns that led to it.

        ``textgym-replay`` steps the env with ``action_text`` and checks the rest.
        """
        invalid = bool(info["invalid_action"])
        # What ChatEnv handed the env: "" for an invalid reply (the env's documented fallback), the JSON text of a
        # strict reply, a lenient reply as it came.
        played = parse_strict_reply(reply, self.action_spec) if self.strict and not invalid else reply
        action_text = "" if invalid else played or ""
        return {"step": step, "observation": observation, "action_text": action_text, "action": info["env_action"],
                "invalid_action": invalid, "reward": float(info["env_reward"]), "terminated": bool(terminated),
                "truncated": bool(truncated), "step_reward": float(info["step_reward"]),
                "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "llm_calls": usage.calls, "cost_usd": round(usage.cost_usd, 8), "latency_s": round(usage.latency_s, 4),
                "replies": [turn.reply for turn in turns], "turns": [turn.as_dict() for turn in turns]}


def _row(env: str, env_id: str, level: int, model: str, rollout: Rollout, variant: int | None) -> dict[str, Any]:
    """The rollout's ``episodes.jsonl`` row (``textgym-eval``'s schema); ``variant``: its obfuscation seed."""
    invalid_actions = sum(turn.invalid for turn in rollout.turns if turn.env_step is not None)
    common = dict(kind="agent", env=env, env_id=env_id, level=level, agent=AGENT, llm_model=model,
                  obfuscation_seed=variant, seed=rollout.seed,
                  episode=rollout.index, steps=rollout.steps, invalid_actions=invalid_actions,
                  invalid_replies=rollout.invalid_replies, wall_time_s=round(rollout.wall_time_s, 3),
                  **usage_fields(rollout.usage))
    if rollout.status == FAILED:
        return episode_row(None, status=FAILED, error=rollout.error, terminated=False, **common)
    notes = {"rollout_return": rollout.episode_return, "step_rewards": rollout.step_rewards,
             "normalized_return": rollout.normalized_return, "reset_seed": rollout.reset_seed}
    if rollout.ended_by_invalid_reply:
        notes["ended_by"] = ENDED_BY_INVALID_REPLY  # the env did not end it: textgym-replay must not expect it to
    return episode_row(rollout.env_return, terminated=rollout.terminated, notes=notes, **common)


async def play_rollouts(client: LLMClient, env: str, level: int, seeds: Iterable[int], n: int, *,
                        concurrency: int = 16, chat: dict[str, Any] | None = None,
                        settings: RolloutSettings = RolloutSettings(), sink: ResultSink | None = None,
                        progress: RunProgress | None = None) -> list[Rollout]:
    """Play ``n`` rollouts of each seed, ``concurrency`` at once, in this event loop.

    Args:
        client: the LLM client (its model, transport, sampling defaults and retry policy; its cache is not used).
        env: TextGym env name (``"cartpole"``) or text id.
        level: knowledge level (1, 2, 4, 5).
        seeds: the groups' seeds (each group's rollouts reset with ``seed * 1000``).
        n: rollouts per seed.
        concurrency: rollouts in flight at once (the client's transport also caps requests in flight).
        chat: :class:`~textgym.chat.ChatEnv` options (``action_format`` lenient or strict, ``invalid_action``,
            ``format_penalty``, ``history``) and ``gym.make`` kwargs (``max_episode_steps``, ...).
        settings: how each rollout asks the model.
        sink: where finished and failed rollouts are recorded as they end (a :class:`ResultsWriter`); rollouts it
            holds as done are skipped (not returned).
        progress: counts finished rollouts under the group ``"<env> L<level> rollout"`` (added here).

    Returns:
        The rollouts played, group by group in seed order, each group by index; failed ones included.

    Raises:
        ValueError: a bad env, level, seed list, ``n``, ``concurrency`` or chat option, before anything runs.
    """
    seeds, chat = [int(seed) for seed in seeds], dict(chat or {})
    probe = _check(env, level, seeds, n, concurrency, chat)
    spec = probe.action_spec
    probe.close()
    entry = env_entry(env)
    player = _Player(client, env, level, chat, settings, spec)
    variant = obfuscation_seed(chat)  # the chat options carry the env's make kwargs
    keys = [EpisodeKey(entry.name, level, AGENT, seed, index, llm_model=client.model, obfuscation_seed=variant)
            for seed in seeds for index in range(n)]
    todo = [key for key in keys if sink is None or not sink.is_done(key)]
    group = f"{entry.name} L{level} {AGENT}"
    if progress is not None:
        progress.add_group(group, len(todo))
    gate = asyncio.Semaphore(concurrency)

    async def one(key: EpisodeKey) -> Rollout:
        async with gate:
            rollout, records, calls = await player.play(key.seed, key.episode)
        if sink is not None:
            row = _row(entry.name, entry.text_id, level, client.model, rollout, variant)
            if rollout.status == DONE:
                sink.write_episode(row, records, None, calls=calls)
            else:
                sink.write_failure(row)
        if rollout.status == FAILED:
            logger.warning("seed %d rollout %d failed: %s", key.seed, key.episode, rollout.error)
        if progress is not None:
            progress.episode_finished(group, failed=rollout.status == FAILED)
        return rollout

    return list(await asyncio.gather(*(one(key) for key in todo)))


def rollouts(client: LLMClient, env: str, level: int, seeds: Iterable[int], n: int, **kwargs: Any) -> list[Rollout]:
    """:func:`play_rollouts` in a new event loop (the client's connections are closed at the end).

    Example:
        >>> from agents.llm.client import LLMClient, HTTPTransport  # doctest: +SKIP
        >>> client = LLMClient("my-model", HTTPTransport("http://127.0.0.1:8000/v1", api_key_env=None))
        >>> group = rollouts(client, "cartpole", 1, seeds=[0], n=8, chat={"action_format": "strict"})
        >>> [r.episode_return for r in group], group[0].turns[0].logprobs
    """

    async def play_then_close() -> list[Rollout]:
        try:
            return await play_rollouts(client, env, level, seeds, n, **kwargs)
        finally:
            await client.aclose()

    return run_async(play_then_close())


# ---- the command ----------------------------------------------------------------------------------------------


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings that change a rollout run's results: resuming under other ones is refused.

    Seeds and ``n`` may grow. ``same_reset_seed``: every rollout of a group starts from episode 0's reset seed.
    """
    llm = {key: cfg.llm.get(key) for key in LLM_IDENTITY_KEYS}
    if cfg.llm.get("provider") != "embedded":
        llm["base_url"] = cfg.llm.get("base_url")
    return {"env": cfg.env.name, "env_kwargs": OmegaConf.to_container(cfg.env.kwargs, resolve=True),
            "level": cfg.level, "agent": {"name": AGENT, "chat": OmegaConf.to_container(cfg.chat, resolve=True),
                                          "constrained": cfg.constrained},
            "llm": llm, "max_steps": cfg.max_steps, "same_reset_seed": True}


def run_rollouts(cfg: DictConfig, run_dir: str | Path) -> EvalOutcome:
    """Play (or resume) the rollouts of ``cfg`` into ``run_dir``.

    Raises:
        ValueError: a bad setting, before any rollout runs (the server's absence too: ``LLMUnavailableError``).
        Interrupted: SIGINT or SIGTERM (finished rollouts are saved; rerun to resume).
    """
    quiet_libraries()
    fold_obfuscation(cfg)  # obfuscate=true: the obfuscated variant's env kwargs (experiments/variants.py)
    seeds = list(cfg.seeds) if OmegaConf.is_list(cfg.seeds) else cfg.seeds
    _check(cfg.env.name, cfg.level, seeds, cfg.n, cfg.concurrency, chat_kwargs(cfg)).close()
    writer = ResultsWriter(run_dir, identity=run_identity(cfg))
    save_run_config(cfg, writer.run_dir)
    settings = RolloutSettings(constrained=bool(cfg.constrained), logprobs=bool(cfg.logprobs))
    with stop_on_signals(), llm_session(cfg.llm, max_concurrency=cfg.concurrency) as client:
        if not isinstance(client, LLMClient):
            raise ValueError(f"textgym-rollout plays through LLMClient (llm=server, local or openai); "
                             f"llm._target_={cfg.llm.get('_target_')} built a {type(client).__name__}")
        progress = RunProgress(enabled=cfg.progress)

        async def play() -> list[Rollout]:
            try:
                async with progress.watching(client):
                    return await play_rollouts(client, cfg.env.name, cfg.level, seeds, cfg.n,
                                               concurrency=cfg.concurrency, chat=chat_kwargs(cfg), settings=settings,
                                               sink=writer, progress=progress)
            finally:
                await client.aclose()

        started = time.perf_counter()
        try:
            played = run_async(play())
        finally:
            progress.close()
    key_of = functools.partial(EpisodeKey, cfg.env.name, cfg.level, AGENT, llm_model=client.model,
                               obfuscation_seed=obfuscation_seed(cfg.env.kwargs))  # (seed, index) -> the rollout's key
    failed = {key_of(r.seed, r.index): r.error or "" for r in played if r.status == FAILED}
    keys = [key_of(seed, index) for seed in seeds for index in range(cfg.n)]
    outcome = EvalOutcome(writer.run_dir, writer.episodes_path, wanted=len(keys),
                          done=sum(writer.is_done(key) for key in keys), failed=failed, retries=dict(client.retries))
    logger.info("%s: %d of %d rollouts done in %.1fs", writer.run_dir, outcome.done, outcome.wanted,
                time.perf_counter() - started)
    return outcome


@hydra.main(version_base="1.3", config_path="../conf", config_name="rollout")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    run_job("textgym-rollout", cfg, lambda: run_rollouts(cfg, run_dir), run_dir)


def main() -> None:
    """Console entry point: ``textgym-rollout [key=value ...]``."""
    hydra_command("textgym-rollout", _hydra_main, "rollout")


if __name__ == "__main__":
    main()
