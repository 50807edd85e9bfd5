from __future__ import annotations

from pathlib import Path

import pytest

from agents.pal import PALAgent
from tests.agents.helpers import build_agent, client_for, play


def program(tail: str, trap: Path) -> str:
    return (f"angle = 0.05\nleft, right = 'push left', 'push right'  # both names appear in the body\n"
            f"open(r'{trap}', 'w').write('executed')  # would leave a file if anything ran this\n"
            f"action = right if angle > 0 else left\n{tail}\n```")


@pytest.mark.parametrize(("tail", "expected"), [("# Action: push right", "push right"),
                                                ("# Action: 1", "push left"),
                                                ('print("Action:", "push right")', "push right")])
def test_pal_reads_the_action_from_the_programs_last_lines(fake_llm, tmp_path: Path, tail: str,
                                                             expected: str) -> None:
    trap = tmp_path / "pwned"
    fake_llm.responder = lambda request: program(tail, trap)
    record = play(PALAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", level=1, episodes=1)[0]
    assert {s["action_text"] for s in record.step_records} == {expected}
    assert record.invalid_replies == record.invalid_actions == 0
    assert not trap.exists()  # the program is read, never run
    request = fake_llm.requests[0]
    assert "response_format" not in request and request["max_tokens"] == 400
    prompt = fake_llm.prompts()[0]
    assert prompt.startswith("Two worked examples of reasoning as a short program")
    assert '"# Action: <action name>"' in prompt
    assert record.step_records[0]["replies"] == [program(tail, trap)]


def test_pal_without_an_action_in_its_tail_is_counted_invalid(fake_llm, tmp_path: Path) -> None:
    # Action names in the body only: the tail names none, so nothing is guessed from the body.
    fake_llm.responder = lambda request: program("# done thinking\nresult = best_move\nprint(result)", tmp_path / "t")
    record = play(PALAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", level=1, episodes=1)[0]
    assert record.invalid_replies == record.invalid_actions == record.steps > 0


def test_pal_config_builds_the_agent(fake_llm) -> None:
    agent = build_agent("pal", fake_llm, "program_max_tokens=128", seed=3)
    assert isinstance(agent, PALAgent) and agent.seed == 3 and agent.program_max_tokens == 128


def test_pal_rejects_bad_budgets(fake_llm) -> None:
    with pytest.raises(ValueError, match="program_max_tokens >= 1"):
        PALAgent(llm=client_for(fake_llm), program_max_tokens=0)
