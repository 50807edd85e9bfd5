"""TextGym tasks as verifiers environments (``pip install "textgym[verifiers]"``; verifiers 0.3.1, its v0 API).

    >>> from textgym.integrations.verifiers import load_environment
    >>> env = load_environment(env="cartpole", level=1, seeds=range(8))  # doctest: +SKIP
    >>> from verifiers.types import ClientConfig  # doctest: +SKIP
    >>> results = env.evaluate_sync(client=ClientConfig(api_base_url="http://127.0.0.1:8080/v1",
    ...                             api_key_var="OPENAI_API_KEY"), model="my-model")  # doctest: +SKIP

Each dataset row is one seed: its ``prompt`` is :class:`~textgym.chat.ChatEnv`'s reset messages (the system
briefing and the first state) and ``info["seed"]`` the seed. A rollout owns one ``ChatEnv`` reset with that seed;
every model reply is stepped in it, and the env's new turns are the next user (or tool) messages, until the episode
ends. Per-turn rewards: each trajectory step's ``reward`` is the step reward of that reply, and
``state["step_rewards"]`` holds them all; the rubric's reward is the episode's return (their sum), with
``normalized_return`` and ``invalid_actions`` as metrics (weight 0). Under ``action_format="tool"`` the env
offers the ``act`` tool.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textgym.chat import ChatEnv
from textgym.integrations import require_extra

vf: Any = require_extra("verifiers", "verifiers", "verifiers")  # untyped: Any
datasets = require_extra("datasets", "verifiers", "Hugging Face datasets")

__all__ = ["TextGymEnv", "episode_return", "invalid_actions", "load_environment", "normalized_return",
           "verifiers_message"]


def verifiers_message(message: dict[str, Any]) -> Any:
    """A ChatEnv turn (a user turn, or a tool turn answering a call) as verifiers' message type."""
    if message["role"] == "tool":
        return vf.ToolMessage(tool_call_id=message.get("tool_call_id", ""), content=message["content"])
    return vf.UserMessage(content=message["content"])


async def episode_return(state: dict[str, Any]) -> float:
    """The episode's return: the sum of its per-turn rewards (penalties included)."""
    return float(sum(state.get("step_rewards") or ()))


async def normalized_return(state: dict[str, Any]) -> float:
    """The env's return with random play at 0 and TextGym's expert at 1 (a metric only where TextGym has both)."""
    value = (state.get("textgym_info") or {}).get("normalized_return")
    return 0.0 if value is None else float(value)


async def invalid_actions(state: dict[str, Any]) -> float:
    """How many replies named no valid action."""
    return float(state.get("invalid_replies", 0))


class TextGymEnv(vf.MultiTurnEnv):
    """A verifiers ``MultiTurnEnv`` whose every rollout is one :class:`~textgym.chat.ChatEnv` episode.

    Args:
        env: TextGym env name (``"cartpole"``) or id.
        level: knowledge level (1, 2, 4, 5).
        seeds: one dataset row (and eval row) per seed.
        chat_kwargs: passed on to :class:`~textgym.chat.ChatEnv`.
        **kwargs: passed on to ``vf.MultiTurnEnv`` (``max_turns``, ``sampling_args``, ...).
    """

    def __init__(self, env: str, level: int, seeds: Iterable[int], chat_kwargs: dict[str, Any],
                 **kwargs: Any) -> None:
        self.env_name, self.level, self.chat_kwargs = env, level, dict(chat_kwargs)
        probe = ChatEnv(env, level, **self.chat_kwargs)  # a bad env, level or option fails here
        rows = []
        for seed in seeds:
            messages, _ = probe.reset(seed=int(seed))
            rows.append({"prompt": messages, "answer": "", "info": {"seed": int(seed)}})
        tools = [tool["function"] for tool in probe.tools]
        has_anchors = probe.reference_returns() is not None
        probe.close()
        if not rows:
            raise ValueError("seeds is empty: give at least one seed (one dataset row each)")
        dataset = datasets.Dataset.from_list(rows)
        rubric = vf.Rubric(funcs=[episode_return], weights=[1.0])
        rubric.add_metric(invalid_actions)
        if has_anchors:  # a metric is a float; where TextGym has no anchors there is nothing to report
            rubric.add_metric(normalized_return)
        super().__init__(dataset=dataset, eval_dataset=dataset, rubric=rubric, tool_defs=tools or None, **kwargs)

    async def setup_state(self, state: Any) -> Any:
        """Give the rollout its own ChatEnv, reset with the row's seed (the row's prompt is that reset)."""
        chat = ChatEnv(self.env_name, self.level, **self.chat_kwargs)
        chat.reset(seed=int(state["info"]["seed"]))
        state["textgym_env"] = chat
        state["step_rewards"], state["invalid_replies"], state["textgym_info"] = [], 0, {}
        return state

    async def env_response(self, messages: Any, state: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Step the model's last reply; the env's new turns come back, and the episode's end ends the rollout."""
        reply = messages[-1]
        reply = reply.model_dump(exclude_none=True) if hasattr(reply, "model_dump") else dict(reply)
        chat: ChatEnv = state["textgym_env"]
        new_messages, reward, terminated, truncated, info = chat.step(reply)
        state["step_rewards"].append(float(reward))
        state["invalid_replies"] += bool(info["invalid_action"])
        state["trajectory"][-1]["reward"] = float(reward)  # per-turn credit, kept by the rubric's scoring
        turns = [verifiers_message(message) for message in new_messages]
        if terminated or truncated:
            state["textgym_info"] = {key: info[key] for key in ("return", "step_rewards", "normalized_return")}
            state["final_env_response"] = turns or [vf.UserMessage(content="The episode is over.")]
        return turns

    async def get_prompt_messages(self, state: Any) -> Any:
        """The next prompt; with a ``history`` other than ``"all"`` it is ChatEnv's window, not the whole chat."""
        prompt = await super().get_prompt_messages(state)
        chat: ChatEnv = state["textgym_env"]
        if chat.history == "all" or not state["trajectory"] or state.get("final_env_response") is not None:
            return prompt
        return chat.messages

    @vf.cleanup
    async def close_chat_env(self, state: Any) -> None:
        """Close the rollout's ChatEnv and drop it from the state (the state is kept; the env is not data)."""
        chat = state.pop("textgym_env", None) if hasattr(state, "pop") else None
        if chat is not None:
            chat.close()


def load_environment(env: str = "cartpole", level: int = 1, seeds: Iterable[int] = range(16),
                     action_format: str = "lenient", invalid_action: str = "fallback", format_penalty: float = 0.0,
                     history: int | str = "all", max_turns: int = -1, env_kwargs: dict[str, Any] | None = None,
                     **kwargs: Any) -> TextGymEnv:
    """The entry point verifiers loads: a TextGym env at a level as a ``MultiTurnEnv``, one row per seed.

    Args:
        env: TextGym env name (``"cartpole"``) or id.
        level: knowledge level (1, 2, 4, 5).
        seeds: the dataset's seeds, one row each (train and eval).
        action_format: ``"lenient"``, ``"strict"`` or ``"tool"``.
        invalid_action: ``"fallback"``, ``"retry:K"`` or ``"terminate"``.
        format_penalty: subtracted from the reward of each invalid reply.
        history: ``"all"``, ``k`` or ``0``.
        max_turns: verifiers' cap on model turns (-1: the episode's own end).
        env_kwargs: for ``gym.make`` of the text env (``max_episode_steps``, ``map_name``, ...).
        **kwargs: passed on to ``vf.MultiTurnEnv``.

    Returns:
        The environment; ``evaluate_sync`` / ``generate`` / a verifiers trainer run it.
    """
    chat_kwargs = {"action_format": action_format, "invalid_action": invalid_action,
                   "format_penalty": format_penalty, "history": history, **(env_kwargs or {})}
    return TextGymEnv(env, level, seeds, chat_kwargs, max_turns=max_turns, **kwargs)
