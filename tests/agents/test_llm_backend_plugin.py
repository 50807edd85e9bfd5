"""A chat backend from outside the repo plugs into textgym-eval as one class plus overrides
(``llm=custom llm._target_=pkg.Class``), as a custom agent does: it implements agents.llm.protocol.ChatModel without
subclassing LLMClient, and the run's results show its replies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

BACKEND = '''
import json

from agents.llm.protocol import ChatModel, Completion, Usage


class Scripted:
    """Always answers ``reply``; counts what it was asked."""

    def __init__(self, max_concurrency, model=None, reply="push right"):
        self.model = model or "scripted-backend"
        self.usage = Usage()
        self.reply = reply
        self.max_concurrency = max_concurrency

    async def complete(self, messages, *, n=1, json_schema=None, temperature=None, max_tokens=None,
                       purpose="action", session=None):
        text = json.dumps({"action": self.reply}) if json_schema is not None else self.reply
        usage = Usage(calls=1, prompt_tokens=sum(len(m["content"]) for m in messages) // 4, completion_tokens=3)
        self.usage += usage
        record = {"purpose": purpose, "request": {"model": self.model, "messages": messages, "n": n},
                  "texts": [text] * n, "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": 3},
                  "latency_s": 0.0, "from_cache": False}
        return Completion([text] * n, usage, [record])

    async def aclose(self):
        pass


assert isinstance(Scripted(1), ChatModel)  # the runtime check covers the members, not their signatures
'''


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_backend_class_from_outside_the_repo_plays_an_episode(tmp_path: Path) -> None:
    package = tmp_path / "my_backends"
    package.mkdir()
    (package / "__init__.py").write_text(BACKEND)
    args = [sys.executable, "-m", "experiments.run_agent", "agent=naive", "llm=custom",
            "llm._target_=my_backends.Scripted", "llm.model=echo-1", "+llm.reply=push left", "seeds=[0]",
            "max_steps=4", f"results_dir={tmp_path / 'runs'}", "logger=none"]  # progress on: it reads the client
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}", "WANDB_MODE": "disabled"}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "eval" / "cartpole-L1-naive"
    steps = _lines(run_dir / "steps.jsonl")
    assert len(steps) == 4 and all(s["action"] == 0 and not s["invalid_action"] for s in steps)  # push left
    (episode,) = _lines(run_dir / "episodes.jsonl")
    assert episode["llm_calls"] == 4 and episode["llm_model"] == "echo-1"
    calls = _lines(run_dir / "calls.jsonl")
    assert [call["texts"] for call in calls] == [['{"action": "push left"}']] * 4


def test_a_backend_key_it_does_not_take_is_one_config_line(tmp_path: Path) -> None:
    package = tmp_path / "my_backends"
    package.mkdir()
    (package / "__init__.py").write_text(BACKEND)
    args = [sys.executable, "-m", "experiments.run_agent", "agent=naive", "llm=custom",
            "llm._target_=my_backends.Scripted", "+llm.colour=blue", f"results_dir={tmp_path / 'runs'}",
            "logger=none", "progress=false"]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}", "WANDB_MODE": "disabled"}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("textgym-eval: error: cannot build llm._target_=my_backends."
                                                   "Scripted: ") and "colour" in lines[0], result.stderr
