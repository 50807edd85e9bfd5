"""Prompt tokens per decision of the naive and EXE agents on CartPole, beside the original study's figures.

    python benchmarks/prompt_tokens.py                       # L1, L3, L4, L5; 200-step episodes; history 10
    python benchmarks/prompt_tokens.py --levels 1 --agents naive exe --steps 200

Episodes run against the scripted OpenAI-compatible server of the tests (``tests/fake_llm_server.py`` on
127.0.0.1) with a responder that balances the pole from the state in the prompt, so every episode lasts the
whole 200 steps, as under ``protocol=paper`` (1 trial at L1/L4/L5, 5 trials from one reset seed at L3).
Free-text replies (suggestion, summary, insight) are fixed texts of typical length (about 150 tokens each,
the summary with a JSON object), since their length feeds the actor's prompt. The agents are built from
``conf/agent/<name>.yaml`` (history_window 10; EXE thinks before acting).

Tokens are counted two ways on the messages actually sent: ``est`` is :func:`agents.budget.estimate_tokens`
(tokenizer-free: a run of letters is one token, digits one per group of three, any other visible character
one), the estimate every budget in ``agents/`` uses; ``c/4`` is characters / 4, what the scripted server
reports as usage. The original's figures (932 naive L1, 1,489 EXE L1) come from its own logs (tiktoken,
gpt-3.5). "per decision" divides every prompt token of a stream (EXE's suggestion, summary and insight
calls included) by its env steps; "actor" counts the action requests alone. ``new`` is what a prefix cache
would re-read: the scripted server reports the longest prefix shared with a recent request as cached.

Measured (this script, 2 cores; deterministic, so any machine gives the same), ``--trim sliding`` (default):

| agent | level | trials x steps | actor est | all est per decision | all c/4 | new c/4 | original |
|---|---|---|---|---|---|---|---|
| naive | L1 | 1 x 200 | 866 | 866 | 735 | 513 | 932 |
| naive | L3 | 5 x 200 | 1113 | 1122 | 1023 | 519 | |
| naive | L4 | 1 x 200 | 3195 | 3195 | 2604 | 522 | |
| naive | L5 | 1 x 200 | 1235 | 1235 | 1103 | 514 | |
| exe | L1 | 1 x 200 | 1029 | 1030 | 918 | 514 | 1,489 |
| exe | L3 | 5 x 200 | 1082 | 1096 | 988 | 522 | |
| exe | L4 | 1 x 200 | 1095 | 1120 | 1014 | 527 | |
| exe | L5 | 1 x 200 | 1398 | 1401 | 1288 | 516 | |

The history is a conversation (a user turn per recent step, an assistant turn naming its action; see
:class:`agents.base.LanguageAgent`). The scripted server's cache keeps plain prefixes only, as vLLM's and OpenAI's
do, so a window sliding by one step re-reads every turn after the system prompt: ``new`` is high above. llama.cpp's
``n_cache_reuse`` (the embedded server) also reuses the shifted turns, so there a sliding step re-reads only its new
turns (~85 SmolLM2 tokens on CartPole; ``benchmarks/llm_decision_latency.py``). ``--trim block``
(``agent.history_trim=block``: 10 to 19 steps, the block moved every 10) is what a plain prefix cache needs: about
270 more prompt tokens per decision (naive L1 1139, EXE L1 1302) but about 5x fewer new ones (new c/4: naive 96-105,
EXE 97-110; the method's request sits in the system prompt, so a step adds only its turns). Naive L4 is large
because the naive agent reads the five offline trajectories as text (the env's default budget of ~400 c/4 tokens
each); EXE reads LLM summaries.
The embedded model's own tokenizer (SmolLM2, via llama.cpp's ``/tokenize``) counts more, as it splits every digit:
naive L4 with a full block history (19 steps) reaches 4,197 tokens on CartPole and 5,684 on Acrobot, which is
why ``llm=local`` gives each slot 6,144 (``tests/agents/test_embedded_llm.py`` checks all ten envs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import textgym  # noqa: E402,F401
from agents.budget import estimate_tokens  # noqa: E402
from agents.llm.client import LLMClient  # noqa: E402
from agents.llm.transport import HTTPTransport  # noqa: E402
from experiments.config import register_resolvers  # noqa: E402
from experiments.running.episodes import run_episode  # noqa: E402
from tests.fake_llm_server import FakeLLMServer  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
ORIGINAL = {("naive", 1): 932, ("exe", 1): 1489}
TRIALS = {1: 1, 2: 1, 3: 5, 4: 1, 5: 1}  # protocol=paper
STATE = re.compile(r"Current state: The cart is ([\d.]+) m (left|right) of the centre, moving (left|right) at "
                   r"([\d.]+) m/s\. The pole leans ([\d.]+) rad to the (left|right), rotating (left|right) at "
                   r"([\d.]+) rad/s\.")
PLAN = ("Critical knowledge: how fast the pole's lean grows, which push stops it, and how far the cart may drift "
        "before it leaves the track. Explore: in the first steps push against the lean and watch how the rotation "
        "answers, noting the angle at which a push no longer recovers it. Exploit: push towards the side the pole "
        "falls to, weighing rotation as much as lean, and steer the cart back towards the centre when steady. "
        "Balance: explore only while the pole is nearly upright; this is the last episode, so exploit.")
SUMMARY = ('{"pole_limit": "0.209 rad", "push_effect": "a push changes the rotation by about 0.3 rad/s", '
           '"cart_drift": "stayed within 0.5 m"} The policy pushed against the rotation every step and kept '
           "the pole up for the whole episode; the cart drifted slowly right. The return was 200, the most "
           "this episode allows.")
INSIGHT = ("Push towards the side the pole rotates to, not only the side it leans to: a push reverses the "
           "rotation within one step. Keep the cart near the centre by pushing back when the pole is steady. "
           "This earned the full return; keep doing it and watch the cart's drift late in the episode.")


def signed(value: str, side: str) -> float:
    return float(value) * (1 if side == "right" else -1)


def responder(request: dict[str, Any]) -> str:
    """Balance the pole from the prompt's state (a feedback rule); fixed texts for free-text requests."""
    user = request["messages"][-1]["content"]
    schema = (request.get("response_format") or {}).get("json_schema", {}).get("schema")
    if schema:
        match = STATE.search(user)
        assert match, "no CartPole state in the action prompt"
        x, v = signed(match[1], match[2]), signed(match[4], match[3])
        theta, omega = signed(match[5], match[6]), signed(match[8], match[7])
        action = "push right" if theta + 0.5 * omega + 0.01 * x + 0.05 * v > 0 else "push left"
        reply: dict[str, Any] = {"action": action}
        if "thought" in schema["properties"]:
            reply = {"thought": "The pole rotates towards that side, so push under it.", **reply}
        return json.dumps(reply)
    if "Summarize this episode in two parts" in user:
        return SUMMARY
    return INSIGHT if "Distil" in user else PLAN


def make_agent(name: str, client: LLMClient, history_window: int, trim: str) -> Any:
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=[f"agent={name}", f"agent.history_window={history_window}",
                                         f"agent.history_trim={trim}"])
    return hydra.utils.instantiate(cfg.agent)(llm=client, seed=0)


async def measure(server: FakeLLMServer, agent_name: str, level: int, steps: int, history: int,
                  trim: str) -> dict[str, float]:
    client = LLMClient("scripted", HTTPTransport(server.base_url, None, max_concurrency=1))
    agent = make_agent(agent_name, client, history, trim)
    env = gym.make("TextGym-CartPole-v0", level=level, max_episode_steps=steps)
    trials = TRIALS[level]
    records = [await run_episode(env, agent, 0, k, trials, same_reset_seed=True) for k in range(trials)]
    await client.aclose()
    calls = [call for record in records for call in record.calls]
    decisions = sum(r.steps for r in records)

    def est(call: dict[str, Any]) -> int:
        return sum(estimate_tokens(m["content"]) for m in call["request"]["messages"])

    actor = [c for c in calls if c["purpose"] == "action"]
    return {
        "decisions": decisions, "calls": len(calls), "return": statistics.mean(r.episode_return for r in records),
        "actor_est": statistics.mean(est(c) for c in actor),
        "actor_c4": statistics.mean(c["usage"]["prompt_tokens"] for c in actor),
        "all_est": sum(est(c) for c in calls) / decisions,
        "all_c4": sum(c["usage"]["prompt_tokens"] for c in calls) / decisions,
        "new_c4": sum(c["usage"]["prompt_tokens"] - (c["usage"]["cached_prompt_tokens"] or 0) for c in calls)
        / decisions,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", default=["naive", "exe"])
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 3, 4, 5])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--trim", default="sliding", choices=["sliding", "block"], help="agent.history_trim")
    args = parser.parse_args(argv)
    print(f"CartPole, {args.steps}-step episodes, history {args.history} ({args.trim}); prompt tokens per decision "
          "(est = agents.budget estimate, c/4 = characters/4)")
    print("| agent | level | trials x steps | calls | actor est | actor c/4 | all est | all c/4 | new c/4 | original |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with FakeLLMServer(responder) as server:
        for agent_name in args.agents:
            for level in args.levels:
                row = asyncio.run(measure(server, agent_name, level, args.steps, args.history, args.trim))
                original = ORIGINAL.get((agent_name, level), "")
                print(f"| {agent_name} | L{level} | {TRIALS[level]} x {row['decisions'] / TRIALS[level]:.0f} | "
                      f"{row['calls']} | {row['actor_est']:.0f} | {row['actor_c4']:.0f} | {row['all_est']:.0f} | "
                      f"{row['all_c4']:.0f} | {row['new_c4']:.0f} | {original} |", flush=True)


if __name__ == "__main__":
    main()
