"""TextGym tasks for TRL's GRPOTrainer (``pip install "textgym[trl]"``; trl 1.16.0, transformers 5.x).

Two ways to train on whole multi-turn episodes:

* ``rollout_func``: :func:`make_rollout_func` plays each prompt's episode with the trainer's own model (one
  generation per turn, batched over the episodes still running), and hands TRL the episode as one token sequence:
  the model's tokens (``env_mask`` 1, with their sampling logprobs) and the env's turns between them (``env_mask``
  0, no loss). Each episode's return and step rewards reach the reward functions; :func:`reward_return` gives each
  completion its episode's return::

      from trl import GRPOConfig, GRPOTrainer
      from textgym.integrations.trl import make_dataset, make_rollout_func, reward_return
      trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=reward_return,
                            train_dataset=make_dataset("cartpole", 1, seeds=range(64)),
                            rollout_func=make_rollout_func("cartpole", 1, turn_tokens=16),
                            args=GRPOConfig(max_completion_length=256, num_generations=4, ...))

* ``environment_factory``: :func:`make_environment_factory` gives TRL an env class whose ``act`` tool plays one
  action (its docstring lists the valid ones) and whose ``get_reward`` is the episode's return; TRL runs its own
  tool-calling loop (one reward per episode on this path, a TRL limit). Build the dataset with
  ``action_format="tool"`` so the prompts ask for the tool.

:func:`make_dataset` gives one row per seed: ``prompt`` is :class:`~textgym.chat.ChatEnv`'s reset messages, and the
seed travels inside the prompt (every message carries ``textgym_seed``, which chat templates ignore), as TRL hands
``rollout_func`` the prompts only; a ``seed`` column serves ``environment_factory``'s ``reset(**row)``. Every
rollout of a GRPO group starts from its prompt's seed, so a group's episodes start from the same state.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from textgym.chat import ChatEnv, Message
from textgym.integrations import require_extra
from textgym.integrations.common import messages_text
from textgym.registration import env_entry

datasets = require_extra("datasets", "trl", "Hugging Face datasets")
torch = require_extra("torch", "trl", "PyTorch")
require_extra("trl", "trl", "TRL")

__all__ = ["SEED_KEY", "make_dataset", "make_environment_factory", "make_rollout_func", "prompt_seed",
           "reward_return"]

SEED_KEY = "textgym_seed"
"""The key, on every message of a :func:`make_dataset` prompt, that carries the episode's seed."""


def make_dataset(env: str, level: int, seeds: Iterable[int], **chat_kwargs: Any) -> Any:
    """One row per seed: ``prompt`` (ChatEnv's reset messages, each carrying :data:`SEED_KEY`) and ``seed``.

    Args:
        env: TextGym env name (``"cartpole"``) or id.
        level: knowledge level (1, 2, 4, 5).
        seeds: the episodes' seeds, one row each.
        **chat_kwargs: :class:`~textgym.chat.ChatEnv` options; give the rollout function or environment factory
            the same ones (the system prompt states the action format).

    Returns:
        A ``datasets.Dataset``.
    """
    chat = ChatEnv(env, level, **chat_kwargs)
    rows = []
    for seed in seeds:
        messages, _ = chat.reset(seed=int(seed))
        rows.append({"prompt": [{"role": m["role"], "content": m["content"], SEED_KEY: int(seed)} for m in messages],
                     "seed": int(seed)})
    chat.close()
    if not rows:
        raise ValueError("seeds is empty: give at least one seed (one dataset row each)")
    return datasets.Dataset.from_list(rows)


def prompt_seed(prompt: Sequence[Message]) -> int:
    """The seed a :func:`make_dataset` prompt carries.

    Raises:
        ValueError: the prompt carries none (it did not come from :func:`make_dataset`).
    """
    for message in prompt if isinstance(prompt, list | tuple) else ():
        if isinstance(message, dict) and message.get(SEED_KEY) is not None:
            return int(message[SEED_KEY])
    raise ValueError(f"the prompt carries no TextGym seed ({SEED_KEY!r} on its messages): build the dataset with "
                     f"textgym.integrations.trl.make_dataset")


def reward_return(completions: list[Any], episode_return: list[float] | None = None, **kwargs: Any) -> list[float]:
    """Reward function for ``GRPOTrainer(reward_funcs=...)``: each completion's episode return.

    Args:
        completions: the completions (one per episode).
        episode_return: what :func:`make_rollout_func`'s rollouts report, one per completion.
        **kwargs: TRL's other reward arguments (``step_rewards`` among them), unused.

    Returns:
        One float per completion.
    """
    if episode_return is None:
        raise ValueError("reward_return needs the episode_return that make_rollout_func's rollout_func reports: pass "
                         "rollout_func=make_rollout_func(...) to GRPOTrainer")
    return [float(value) for value in episode_return]


@dataclass
class _Episode:
    """One rollout in progress: the env, the text conversation and the token sequence TRL gets."""

    chat: ChatEnv
    messages: list[Message]
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    step_rewards: list[float] = field(default_factory=list)
    done: bool = False


def _render(tokenizer: Any, messages: list[Message], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _env_tokens(tokenizer: Any, episode: _Episode, reply: str, model_text: str,
                new_messages: list[Message]) -> list[int]:
    """Tokens of what the chat template puts after the model's tokens.

    The close of its turn (what it did not
    generate itself, e.g. the newline after its end-of-turn token) and the env's new turns up to the next
    generation prompt. Rendered as text differences, so the model's own tokens are never re-tokenized.
    """
    asked = _render(tokenizer, episode.messages, True)
    answered_messages = [*episode.messages, {"role": "assistant", "content": reply}]
    answered = _render(tokenizer, answered_messages, False)
    following = _render(tokenizer, [*answered_messages, *new_messages], True)
    if not (answered.startswith(asked) and following.startswith(answered)):
        raise ValueError("the tokenizer's chat template does not render a conversation as a growing prefix, which "
                         "multi-turn rollouts need (ChatML-style templates do)")
    own_turn = answered[len(asked):]
    if own_turn.startswith(model_text):
        closing = own_turn[len(model_text):]
    elif own_turn.startswith(reply):  # the model also emitted special tokens the template drops
        closing = own_turn[len(reply):]
    else:
        closing = ""
    return tokenizer(closing + following[len(answered):], add_special_tokens=False)["input_ids"]


def make_rollout_func(env: str, level: int, *, turn_tokens: int = 32,
                      generation_kwargs: dict[str, Any] | None = None,
                      **chat_kwargs: Any) -> Callable[[list[Any], Any], dict[str, Any]]:
    """A ``rollout_func`` for ``GRPOTrainer`` that plays whole episodes with the trainer's model.

    Each prompt (from :func:`make_dataset`, already repeated ``num_generations`` times by TRL) starts a ChatEnv
    episode with its seed. Turns are generated with the trainer's generation config (sampling, temperature, ...),
    at most ``turn_tokens`` new tokens each; an episode ends when the env ends it or its completion reaches the
    trainer's ``max_completion_length`` (its return is then the rewards so far).

    Args:
        env: TextGym env name or id.
        level: knowledge level (1, 2, 4, 5).
        turn_tokens: most new tokens per model turn.
        generation_kwargs: extra ``model.generate`` arguments (e.g. ``prefix_allowed_tokens_fn`` to constrain
            replies to an action vocabulary).
        **chat_kwargs: :class:`~textgym.chat.ChatEnv` options (the dataset's): ``action_format`` ``"lenient"``
            or ``"strict"``; ``history="all"`` (the episode is one growing token sequence).

    Returns:
        ``rollout_func(prompts, trainer) -> dict`` with ``prompt_ids``, ``completion_ids``, ``logprobs``,
        ``env_mask`` (1 = model token, 0 = env token), ``episode_return`` and ``step_rewards``.
    """
    if chat_kwargs.get("history", "all") != "all":
        raise ValueError("make_rollout_func needs history='all': an episode is one growing token sequence; a window "
                         "(history=k or 0) changes earlier turns, which TRL's single completion cannot show")
    if chat_kwargs.get("action_format", "lenient") == "tool":
        raise ValueError("make_rollout_func reads text replies (action_format 'lenient' or 'strict'); for tool calls "
                         "use make_environment_factory, where TRL runs the tool loop")
    if turn_tokens < 1:
        raise ValueError(f"turn_tokens must be >= 1, actually {turn_tokens}")
    ChatEnv(env, level, **chat_kwargs).close()  # a bad env, level or option fails here, not mid-training

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        if not hasattr(trainer, "generation_config"):
            raise ValueError("textgym's rollout_func generates with the trainer's transformers model; this trainer "
                             "has no generation_config (vLLM generation is not supported by it)")
        tokenizer = trainer.processing_class
        tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
        model = trainer.accelerator.unwrap_model(trainer.model)
        config = copy.deepcopy(trainer.generation_config)
        config.max_new_tokens = turn_tokens
        config.output_scores = config.return_dict_in_generate = True  # the sampled tokens' logprobs
        budget = trainer.args.max_completion_length
        episodes = []
        for prompt in prompts:
            chat = ChatEnv(env, level, **chat_kwargs)
            messages, _ = chat.reset(seed=prompt_seed(prompt))
            prompt_ids = tokenizer(_render(tokenizer, messages, True), add_special_tokens=False)["input_ids"]
            episodes.append(_Episode(chat, list(messages), prompt_ids))
        while running := [e for e in episodes if not e.done]:
            replies = _generate(model, tokenizer, config, [e.prompt_ids + e.completion_ids for e in running],
                                generation_kwargs or {})
            for episode, (tokens, logprobs) in zip(running, replies, strict=True):
                _play_turn(tokenizer, episode, tokens, logprobs, budget)
        for episode in episodes:
            episode.chat.close()
        return {"prompt_ids": [e.prompt_ids for e in episodes],
                "completion_ids": [e.completion_ids for e in episodes],
                "logprobs": [e.logprobs for e in episodes],
                "env_mask": [e.env_mask for e in episodes],
                "episode_return": [float(sum(e.step_rewards)) for e in episodes],
                "step_rewards": [list(e.step_rewards) for e in episodes]}

    return rollout_func


def _generate(model: Any, tokenizer: Any, config: Any, sequences: list[list[int]],
              generation_kwargs: dict[str, Any]) -> list[tuple[list[int], list[float]]]:
    """One turn for each sequence (left-padded into a batch).

    Its new tokens up to and including the first end token, and their logprobs under the processed (temperature,
    top-k/p) sampling distribution.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(map(len, sequences))
    input_ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in sequences], device=model.device)
    attention_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=model.device)
    with torch.no_grad():
        output = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                                **generation_kwargs)
    new_tokens = output.sequences[:, width:]
    logprobs = torch.stack(output.scores, dim=1).float().log_softmax(-1)
    chosen = logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
    end_ids = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    turns = []
    for row, row_logprobs in zip(new_tokens.tolist(), chosen.tolist(), strict=True):
        length = next((i + 1 for i, token in enumerate(row) if token in end_ids), len(row))
        turns.append((row[:length], row_logprobs[:length]))
    return turns


def _play_turn(tokenizer: Any, episode: _Episode, tokens: list[int], logprobs: list[float], budget: int) -> None:
    """Step the env with the model's turn and extend the episode's sequence with it and the env's answer."""
    episode.completion_ids += tokens
    episode.env_mask += [1] * len(tokens)
    episode.logprobs += logprobs
    reply = tokenizer.decode(tokens, skip_special_tokens=True)
    new_messages, reward, terminated, truncated, _ = episode.chat.step(reply)
    episode.step_rewards.append(float(reward))
    if terminated or truncated or len(episode.completion_ids) >= budget:
        episode.done = True
        return
    env_ids = _env_tokens(tokenizer, episode, reply, tokenizer.decode(tokens), new_messages)
    episode.completion_ids += env_ids
    episode.env_mask += [0] * len(env_ids)
    episode.logprobs += [0.0] * len(env_ids)
    episode.messages += [{"role": "assistant", "content": reply}, *new_messages]
    episode.done = len(episode.completion_ids) >= budget  # no room for another turn


_ACTION_TYPES = {"discrete": str, "continuous": float, "vector": dict}


def make_environment_factory(env: str, level: int, **chat_kwargs: Any) -> type:
    """An ``environment_factory`` for ``GRPOTrainer``: a class TRL instantiates once per rollout slot.

    Its public methods: ``reset(**row)`` (resets with the row's ``seed``; the row's prompt must be
    :func:`make_dataset`'s with the same options, so it returns ``None``: nothing to add to the prompt), the tool
    ``act(action)`` (one action; its docstring lists the valid ones, and it returns the env's answer as text) and
    ``get_reward()`` (the episode's return so far, penalties included).

    Args:
        env: TextGym env name or id.
        level: knowledge level (1, 2, 4, 5).
        **chat_kwargs: :class:`~textgym.chat.ChatEnv` options; ``action_format`` defaults to ``"tool"``.

    Returns:
        The environment class (a zero-argument callable).
    """
    chat_kwargs = {"action_format": "tool", **chat_kwargs}
    if chat_kwargs["action_format"] != "tool":
        raise ValueError("make_environment_factory plays actions through the act tool: action_format must be 'tool' "
                         f"(the prompts ask for it), actually {chat_kwargs['action_format']!r}")
    probe = ChatEnv(env, level, **chat_kwargs)
    spec, tool = probe.action_spec, probe.tools[0]["function"]
    probe.close()
    if spec["type"] == "discrete":
        what = f"The action's name (choices: {json.dumps(spec['names'])})"  # transformers reads it as an enum
    elif spec["type"] == "continuous":
        what = f"A number from {spec['low']} to {spec['high']}."
    else:
        what = "Every actuator's number, by name: " + ", ".join(spec["names"]) + "."

    class TextGymToolEnv:
        """A TextGym episode for TRL's tool loop (see :func:`make_environment_factory`)."""

        def __init__(self) -> None:
            self.chat = ChatEnv(env, level, **chat_kwargs)
            self.step_rewards: list[float] = []
            self.done = True

        def reset(self, **row: Any) -> str | None:
            seed = row.get("seed")
            if seed is None and "prompt" in row:
                seed = prompt_seed(row["prompt"])
            messages, _ = self.chat.reset(seed=None if seed is None else int(seed))
            prompt = row.get("prompt")
            if isinstance(prompt, list) and prompt and prompt[0].get("content") != messages[0]["content"]:
                raise ValueError("the dataset's system prompt is not this env's: build it with make_dataset(env, "
                                 "level, seeds, action_format='tool', ...) and the factory's options")
            self.step_rewards, self.done = [], False
            return None

        def act(self, action: Any) -> str:
            if self.done:
                return "The episode is over: no more actions count."
            call = {"id": f"act-{len(self.step_rewards)}", "name": "act", "arguments": {"action": action}}
            new_messages, reward, terminated, truncated, info = self.chat.step(call)
            self.step_rewards.append(float(reward))
            text = messages_text(new_messages)
            if terminated or truncated:
                self.done = True
                text = f"{text}\nThe episode is over. Return: {info['return']:g}.".lstrip()
            return text

        def get_reward(self) -> float:
            """The episode's return so far (the sum of its step rewards)."""
            return float(sum(self.step_rewards))

    TextGymToolEnv.act.__doc__ = f"""{tool['description']}

        Args:
            action: {what}

        Returns:
            What the env answers: the reward of the step and the new state, or that the episode is over.
        """
    TextGymToolEnv.act.__annotations__ = {"action": _ACTION_TYPES[spec["type"]], "return": str}
    TextGymToolEnv.__name__ = TextGymToolEnv.__qualname__ = f"TextGym{env_entry(env).task}L{level}"
    return TextGymToolEnv
