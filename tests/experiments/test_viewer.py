"""textgym-view: one HTML file from real run dirs (real runner, scripted HTTP model server, real envs), checked
as data and in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by selenium)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from experiments.records.results import iter_jsonl, load_episodes
from experiments.records.transcripts import load_calls
from experiments.reports.viewer import ViewerError, write_viewer
from experiments.run_agent import evaluate
from tests.experiments.conftest import compose_config, run_cli

HOSTILE = 'Push towards the lean. <img src=x onerror="document.body.id=\'pwned\'"><script>document.title="x"</script>'


@pytest.fixture
def runs(fake_llm, fake_llm_overrides, tmp_path: Path) -> Path:
    """Four run dirs: EXE at L3 (suggestion, summary and insight around its episodes), naive at L1, random
    MountainCar (long episodes, no LLM), and a naive run whose first episode failed."""
    original = fake_llm.responder
    fake_llm.responder = lambda request: HOSTILE if not request.get("response_format") else original(request)
    base = ["seeds=[0,1]", "episodes=2", "max_steps=6", "concurrency=2", "llm.cache=off", *fake_llm_overrides]
    root = tmp_path / "runs"
    evaluate(compose_config("eval", ["env=cartpole", "agent=exe", "level=3", *base]), root / "cartpole-L3-exe")
    evaluate(compose_config("eval", ["env=cartpole", "agent=naive", "level=1", *base]), root / "cartpole-L1-naive")
    evaluate(compose_config("eval", ["env=mountaincar", "agent=random", "level=1", "seeds=[0]", "episodes=1",
                                     "max_steps=120", "logger=none", "progress=false"]), root / "mountaincar-random")
    fake_llm.fail_next = [500] * 2  # the first request and its one retry fail: that episode fails
    evaluate(compose_config("eval", ["env=frozenlake", "agent=naive", "level=1", "seeds=[0]", "episodes=1",
                                     "llm.max_retries=1", *base[3:]]), root / "frozenlake-failed")
    return root


def chunks(html: str) -> dict[str, Any]:
    return {m[1]: json.loads(m[2]) for m in re.finditer(r'<script type="application/json" id="([^"]+)">(.*?)</script>',
                                                         html, re.S)}


def test_every_episode_is_embedded_with_frames_steps_and_calls(runs: Path, tmp_path: Path) -> None:
    out = write_viewer([runs], tmp_path / "viewer.html")
    data = chunks(out.read_text())
    table = data["tg-meta"]["episodes"]
    rows = load_episodes([runs], include_failed=True)
    assert len(table) == len(rows) == 4 + 4 + 1 + 1
    assert {r["status"] for r in table} == {"done", "failed"}
    for shown in table:
        episode = data[f"tg-ep-{shown['id']}"]
        if shown["status"] == "failed":
            assert episode["steps"] == [] and "no steps" in shown["no_steps"]
            continue
        assert len(episode["steps"]) == shown["steps"]
        assert len(episode["frames"]) == shown["steps"] + 1 == shown["frames"]  # before each step, and the end
        frame = Image.open(io.BytesIO(base64.b64decode(episode["frames"][0].split(",", 1)[1])))
        assert frame.format == "WEBP" and frame.width == 240
        assert len(episode["calls"]) == shown["llm_calls"]
    exe = next(r for r in table if r["agent"] == "exe" and r["seed"] == 0 and r["episode"] == 0)
    calls = data[f"tg-ep-{exe['id']}"]["calls"]
    assert calls[0]["phase"] == "reset" and calls[0]["purpose"] == "suggestion"
    assert {"summary", "insight"} <= {c["purpose"] for c in calls if c["phase"] == "end"}
    assert exe["notes"]["suggestion"] == HOSTILE
    # Message texts sit once in the page's text table, and resolve to what the transcript holds.
    texts = data["tg-texts"]

    def text(index: int) -> str:
        item = texts[index]
        return item if isinstance(item, str) else "\n".join(text(i) for i in item)

    recorded = load_calls(runs / "cartpole-L3-exe", 0, 0)
    assert [[text(m["text"]) for m in c["request"]["messages"]] for c in calls] == [
        [m["content"] for m in c["request"]["messages"]] for c in recorded]
    assert len({json.dumps(t) for t in texts}) == len(texts)


def test_frame_options_pick_and_cap_the_frames(runs: Path, tmp_path: Path) -> None:
    def frames(**options: Any) -> dict[tuple[str, int, int], int]:
        table = chunks(write_viewer([runs], tmp_path / "v.html", **options).read_text())["tg-meta"]["episodes"]
        return {(r["agent"], r["seed"], r["episode"]): r["frames"] for r in table if r["status"] == "done"}

    assert set(frames(frames="none").values()) == {0}
    first = frames(frames="first-episode")
    assert all((count > 0) == (episode == 0) for (_, _, episode), count in first.items())
    assert sum(frames(max_frames=10).values()) == 10
    with pytest.raises(ViewerError, match="frames must be one of all, first-episode, none"):
        write_viewer([runs], tmp_path / "v.html", frames="some")


def test_a_drifted_replay_stops_its_frames_and_says_where(runs: Path, tmp_path: Path) -> None:
    steps_file = runs / "cartpole-L1-naive" / "steps.jsonl"
    steps = list(iter_jsonl(steps_file))
    target = next(s for s in steps if s["seed"] == 1 and s["episode"] == 0 and s["step"] == 2)
    target["observation"] = "The cart is somewhere else."
    steps_file.write_text("".join(json.dumps(s) + "\n" for s in steps))
    table = chunks(write_viewer([runs], tmp_path / "v.html").read_text())["tg-meta"]["episodes"]
    drifted = next(r for r in table if r["agent"] == "naive" and r["seed"] == 1 and r["episode"] == 0)
    assert drifted["frames"] == 2 and "step 2" in drifted["frame_note"] and "no longer matches" in drifted["frame_note"]


def test_command_line(runs: Path, tmp_path: Path) -> None:
    result = run_cli(["experiments.reports.viewer", str(runs / "cartpole-L1-naive")], cwd=tmp_path)
    assert (runs / "cartpole-L1-naive" / "viewer.html").exists()
    assert result.stdout.startswith("viewer: file://") and "viewer.html" in result.stdout
    missing = run_cli(["experiments.reports.viewer", str(tmp_path / "nowhere")], cwd=tmp_path, check=False)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("textgym-view: no run dir at ")
    bad = run_cli(["experiments.reports.viewer", str(runs), "--frames", "some"], cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "invalid choice: 'some'" in bad.stderr and "first-episode" in bad.stderr


# ---- in a real browser -----------------------------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1400")


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "needs Debian's chromium and chromium-driver (.ci/run installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="textgym-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)  # a given driver: nothing downloaded
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_viewer_in_headless_chromium(runs: Path, tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    out = write_viewer([runs], tmp_path / "viewer.html")
    data = chunks(out.read_text())
    browser.get(out.resolve().as_uri())
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))

    def rows() -> list[Any]:
        return browser.find_elements(By.CSS_SELECTOR, "#episodes tbody tr")

    def cells(row: Any) -> list[str]:
        return [td.text for td in row.find_elements(By.TAG_NAME, "td")]

    assert len(rows()) == 10
    # A line a stream where streams play several episodes; MountainCar's one-episode stream gets a sentence instead.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#curves-card svg polyline")) == 2 + 2
    assert browser.find_element(By.CSS_SELECTOR, "#curves-card .single-episode").text.startswith(
        "One episode a stream, so no curve: mountaincar L1")
    assert "episode 2" in browser.find_element(By.CSS_SELECTOR, "#curves-card svg").text  # episodes 1 and 2, not 0
    assert "failed" in [cells(r)[-1] for r in rows()]

    # Sort by return, highest first (a failed episode has none and goes last), then filter to one agent.
    header = browser.find_element(By.CSS_SELECTOR, 'th[data-key="return"]')
    header.click()
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="return"]').click()
    returns = [cells(r)[6] for r in rows()]
    numbers = [float(x) for x in returns if x != "–"]
    assert numbers == sorted(numbers, reverse=True) and returns[-1] == "–"
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-filter="agent"]')).select_by_visible_text("exe")
    assert len(rows()) == 4 and {cells(r)[2] for r in rows()} == {"exe"}

    # Open EXE's seed 0 episode 0: its suggestion before the first step, frames, and a step's prompt and reply.
    next(r for r in rows() if cells(r)[4:6] == ["0", "0"]).click()
    panel = browser.find_element(By.ID, "episode")
    assert "exe" in panel.find_element(By.TAG_NAME, "h2").text and "seed 0 · episode 0" in panel.text
    before = panel.find_element(By.CSS_SELECTOR, ".boundary.reset")
    assert "Before the episode" in before.text and "suggestion" in before.text
    assert HOSTILE in before.find_element(By.CSS_SELECTOR, "pre.boundary-text").text  # shown as text, not HTML
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("id") != "pwned" and browser.title != "x"
    assert panel.find_element(By.CSS_SELECTOR, ".boundary.end").text.count("insight") >= 1
    # Each note the calls around the episode state (suggestion, summary, insight) is shown once, with its call.
    exe_id = next(r["id"] for r in data["tg-meta"]["episodes"]
                  if r["agent"] == "exe" and r["seed"] == 0 and r["episode"] == 0)
    around = [c for c in data[f"tg-ep-{exe_id}"]["calls"] if c["phase"] != "step"]
    assert panel.text.count(HOSTILE) == len(around) >= 3
    steps = panel.find_elements(By.CSS_SELECTOR, "#timeline .step")
    assert len(steps) == 6
    # The action texts number actions from 1 ("1: push left"); the base env indexes them from 0: both, labelled.
    first = data[f"tg-ep-{exe_id}"]["steps"][0]
    assert steps[0].find_element(By.CSS_SELECTOR, ".action").text == "→ " + first["action_text"]
    assert steps[0].find_element(By.CSS_SELECTOR, ".base-action").text == \
        f"action {first['action'] + 1} as the text numbers it; the base env's index {first['action']}"
    assert "parsed:" not in steps[0].text
    frame = steps[0].find_element(By.CSS_SELECTOR, "img.frame")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", frame) == 240

    call = next(c for c in load_calls(runs / "cartpole-L3-exe", 0, 0) if c["phase"] == "step" and c["step"] == 0)
    system, user = (m["content"] for m in call["request"]["messages"])
    assert not steps[0].find_elements(By.CSS_SELECTOR, ".call")  # prompts are built when asked for
    steps[0].find_element(By.CSS_SELECTOR, "details.calls > summary").click()
    shown = WebDriverWait(browser, 20).until(lambda d: steps[0].find_elements(By.CSS_SELECTOR, ".call"))[0]
    prompts = shown.find_elements(By.CSS_SELECTOR, "pre.prompt")
    assert prompts[1].text == user.strip() and not prompts[0].is_displayed()  # the system prompt starts folded
    shown.find_element(By.CSS_SELECTOR, "details.msg > summary").click()
    assert prompts[0].is_displayed() and prompts[0].text.startswith(system.strip()[:200])
    assert shown.find_element(By.CSS_SELECTOR, "pre.reply-text").text == call["texts"][0]
    assert "action" in shown.find_element(By.CSS_SELECTOR, ".head").text
    # A later step's request holds the episode so far as turns: all there, only the newest one open.
    later = next(c for c in load_calls(runs / "cartpole-L3-exe", 0, 0) if c["phase"] == "step" and c["step"] == 2)
    summary = steps[2].find_element(By.CSS_SELECTOR, "details.calls > summary")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()
    # The calls are built on the "toggle" event, which fires after the click returns.
    built = WebDriverWait(browser, 20).until(lambda d: steps[2].find_elements(By.CSS_SELECTOR, ".call"))
    boxes = built[0].find_elements(By.CSS_SELECTOR, "details.msg")
    turns = [box for box in boxes if box.find_elements(By.CSS_SELECTOR, "summary > .role")]  # not the response format
    sent = later["request"]["messages"]
    assert [t.find_element(By.CSS_SELECTOR, ".role").text for t in turns] == [m["role"] for m in sent] == \
        ["system", "user", "assistant", "user", "assistant", "user"]
    assert [t.get_attribute("open") is not None for t in turns] == [False] * 5 + [True]
    assert turns[-1].find_element(By.CSS_SELECTOR, "pre.prompt").text == sent[-1]["content"].strip()

    # A 120-step episode pages its timeline 50 steps at a time.
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-filter="agent"]')).select_by_visible_text("random")
    rows()[0].click()
    assert [s.get_attribute("data-step") for s in browser.find_elements(By.CSS_SELECTOR, "#timeline .step")][::49] \
        == ["0", "49"]
    browser.find_element(By.CSS_SELECTOR, "#step-pager button.next").click()
    assert browser.find_element(By.CSS_SELECTOR, "#timeline .step").get_attribute("data-step") == "50"
    long_id = next(r["id"] for r in data["tg-meta"]["episodes"] if r["agent"] == "random")
    assert len(data[f"tg-ep-{long_id}"]["steps"]) == 120

    # Back to the EXE episode with its step 0 open, for a screenshot a person would recognise.
    Select(browser.find_element(By.CSS_SELECTOR, 'select[data-filter="agent"]')).select_by_visible_text("exe")
    next(r for r in rows() if cells(r)[4:6] == ["0", "0"]).click()
    browser.find_element(By.CSS_SELECTOR, "#timeline .step details.calls > summary").click()
    browser.execute_script("document.querySelector('#timeline .step').scrollIntoView({block: 'center'})")
    shot = tmp_path / "viewer.png"
    assert browser.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # text, a frame, colours
