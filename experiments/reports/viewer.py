"""textgym-view: one self-contained HTML file to look at what the agents saw, did and were told.

    textgym-view runs/compare                        # every run dir below -> runs/compare/viewer.html
    textgym-view runs/eval/a runs/eval/b --out view.html --frames first-episode --max-frames 500

The file opens from disk with no server and loads nothing from the network. It holds:

- the return-over-episodes curve of every stream (inline SVG, one chart per env and level);
- a table of episodes (env, level, agent, model, seed, episode, return, steps, invalid actions, tokens, $,
  status), sortable by any column and filtered by env, level, agent, model, status or any text;
- per episode, a timeline of its steps (rendered frame, observation text, action, reward, and, on click, every
  prompt and reply of the step's LLM calls), with the calls made before the first step (EXE's suggestion) and
  after the last (summaries, insights, reflections) and the episode row's ``notes`` at its boundaries.

Frames are not stored at run time: episodes are replayed through the real env (the run's env, kwargs and level,
reset with the recorded reset seed, stepped with the recorded action texts; see ``experiments/reports/replay.py``) and
each ``rgb_array`` frame is embedded as a small WebP thumbnail. ``--frames all|first-episode|none`` picks the
episodes to render (``first-episode``: episode 0 of each stream) and ``--max-frames`` caps the total; a replay
that stops matching the recording stops its frames there and says so.

Large runs stay usable: the data sits in JSON chunks (one per episode, plus one table of prompt texts stored once
each, as in ``texts.jsonl``) that the page parses only when an episode is opened, and the timeline shows 50 steps
a page.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import functools
import io
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np
from PIL import Image

from experiments.records.results import DONE, EpisodeKey, episode_files, load_episodes
from experiments.records.transcripts import IDENTITY_FIELDS, Transcript
from experiments.reports.replay import RecordedRun, ReplayError, make_run_env

__all__ = ["write_viewer", "ViewerError", "FRAME_MODES", "main"]

logger = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "viewer_static"
FRAME_MODES = ("all", "first-episode", "none")
DEFAULT_MAX_FRAMES = 2000
DEFAULT_FRAME_WIDTH = 240
PAGE_STEPS = 50
VIEWER_FILE = "viewer.html"
# Line colours of the curves: one per agent (and model), seeds of one agent share it.
PALETTE = ("#2f6fd6", "#d8572f", "#23864a", "#8e44ad", "#c29b0c", "#17a2b8", "#e83e8c", "#6c757d", "#5a3e1b",
           "#1b5e20")


class ViewerError(ValueError):
    """The viewer cannot be written: no run dirs, or a bad option. One line."""


def _script_json(value: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">`` (no ``</script>`` or ``<!--`` can form)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def encode_frame(frame: np.ndarray, width: int) -> str:
    """An ``rgb_array`` frame as a ``data:`` URI of a WebP thumbnail at most ``width`` pixels wide."""
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if image.width > width:
        # reducing_gap: a cheap box reduction first; with bilinear after it, 2x faster than Lanczos, as sharp here.
        image = image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.BILINEAR,
                             reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=70, method=4)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass
class _FrameBudget:
    mode: str
    remaining: int

    def wants(self, key: EpisodeKey) -> bool:
        return self.mode != "none" and self.remaining > 0 and (self.mode == "all" or key.episode == 0)


@dataclass
class _EpisodeFrames:
    frames: list[str | None] = field(default_factory=list)
    final_observation: str | None = None
    note: str | None = None


def _replay_frames(env: Any, seed: int, steps: list[dict[str, Any]], budget: _FrameBudget,
                   width: int) -> _EpisodeFrames:
    """Frames before each step and after the last, from a replay that checks each observation on the way."""
    result = _EpisodeFrames()
    obs, _ = env.reset(seed=seed)
    for index, step in enumerate([*steps, None]):
        if step is not None and obs != step.get("observation"):
            result.note = (f"Frames stop at step {index}: the replay no longer matches the recorded observation "
                           f"(textgym-replay names the difference).")
            return result
        if budget.remaining <= 0:
            result.note = f"Frames stop at step {index}: the viewer's frame budget (--max-frames) is used up."
            return result
        result.frames.append(encode_frame(env.render(), width))
        budget.remaining -= 1
        if step is not None:
            obs, *_ = env.step(step["action_text"])
    result.final_observation = obs
    return result


class _TextTable:
    """The page's one table of prompt texts: each text once, calls name them by index (shorter than a sha256)."""

    def __init__(self) -> None:
        self.items: list[str | list[int]] = []
        self._index: dict[str, int] = {}

    def add(self, sha: str | None, transcript: Transcript) -> int | None:
        if sha is None:
            return None
        if sha not in self._index:
            if sha in transcript.texts:
                item: str | list[int] = transcript.texts[sha]
            elif sha in transcript.line_texts:
                item = [self.add(line, transcript) for line in transcript.line_texts[sha]]  # type: ignore[misc]  # add(str) is an int
            else:
                item = f"[text {sha} is missing from the run dir's texts.jsonl]"
            self._index[sha] = len(self.items)
            self.items.append(item)
        return self._index[sha]

    def call(self, call: dict[str, Any], transcript: Transcript) -> dict[str, Any]:
        """A stored call line for the page: identity dropped, message texts as table indices."""
        request = dict(call["request"])
        request["messages"] = [{"role": m["role"], "text": self.add(m["sha256"], transcript)}
                               for m in request["messages"]]
        request["response_format"] = self.add(request.pop("response_format_sha256", None), transcript)
        return {**{k: v for k, v in call.items() if k not in IDENTITY_FIELDS and k != "schema_version"},
                "request": request}


@dataclass
class _Run:
    """One run dir, read once."""

    run_dir: Path
    rows: list[dict[str, Any]]
    steps: dict[EpisodeKey, list[dict[str, Any]]]
    calls: dict[EpisodeKey, list[dict[str, Any]]]
    transcript: Transcript
    recorded: RecordedRun | None
    why_no_steps: str | None

    @classmethod
    def load(cls, run_dir: Path) -> _Run:
        rows = load_episodes([run_dir], include_failed=True)
        try:
            recorded: RecordedRun | None = RecordedRun.load(run_dir)
            why = None
        except ReplayError as error:  # e.g. PPO runs keep no steps: their rows still go in the table
            recorded, why = None, str(error)
        transcript = Transcript(run_dir)
        calls: dict[EpisodeKey, list[dict[str, Any]]] = defaultdict(list)
        for line in transcript.raw_calls():
            calls[EpisodeKey.of(line)].append(line)
        steps = {k: sorted(v, key=lambda s: int(s["step"])) for k, v in (recorded.steps if recorded else {}).items()}
        return cls(run_dir, rows, steps, dict(calls), transcript, recorded, why)


def _sort_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(name)) for name in ("env", "level", "agent", "llm_model")) + (
        f"{int(row['seed']):09d}", f"{int(row['episode']):06d}")


def _table_row(index: int, run: _Run, row: dict[str, Any]) -> dict[str, Any]:
    tokens = int(row.get("prompt_tokens") or 0) + int(row.get("completion_tokens") or 0)
    return {
        "id": index, "run": str(run.run_dir), "kind": row.get("kind"), "env": row["env"], "level": row.get("level"),
        "agent": row["agent"], "model": row.get("llm_model"), "seed": int(row["seed"]),
        "episode": int(row["episode"]), "return": row.get("return"), "steps": row.get("steps"),
        "invalid_actions": row.get("invalid_actions"), "llm_calls": row.get("llm_calls"), "tokens": tokens,
        "cached_prompt_tokens": row.get("cached_prompt_tokens"), "cost_usd": row.get("cost_usd"),
        "status": row.get("status", DONE), "error": row.get("error"), "notes": row.get("notes") or {},
        "train_seed": row.get("train_seed"),
    }


def _curves_svg(rows: list[dict[str, Any]]) -> str:
    """One small SVG chart per (env, level) whose streams play several episodes.

    A line of returns over episodes (1, 2, ...) per stream. Groups of one episode a stream get a sentence saying so
    (their returns are in the table): a chart of single points says nothing.
    """
    groups: dict[tuple[str, Any], dict[tuple[Any, ...], list[tuple[int, float]]]] = defaultdict(
        lambda: defaultdict(list))
    for row in rows:
        if row["status"] == DONE and row["return"] is not None:
            stream = (row["agent"], row["model"], row["seed"], row["train_seed"])
            groups[(row["env"], row["level"])][stream].append((row["episode"], float(row["return"])))
    colours: dict[tuple[Any, Any], str] = {}
    charts = []
    single = [_escape(f"{env}" + (f" L{level}" if level is not None else ""))
              for (env, level), streams in sorted(groups.items(), key=lambda item: str(item[0]))
              if max(len(values) for values in streams.values()) < 2]
    width, height, pad_left, pad_bottom, pad = 360, 190, 46, 24, 8
    for (env, level), streams in sorted(groups.items(), key=lambda item: str(item[0])):
        if max(len(values) for values in streams.values()) < 2:
            continue
        points = [p for values in streams.values() for p in values]
        x_max = max(1, max(x for x, _ in points))  # episode indices from 0; drawn as episodes 1 to x_max + 1
        y_min, y_max = min(y for _, y in points), max(y for _, y in points)
        if y_max - y_min < 1e-9:
            y_min, y_max = y_min - 1, y_max + 1

        def sx(x: float) -> float:
            return pad_left + (width - pad_left - pad) * x / x_max  # noqa: B023 (used inside this loop only)

        def sy(y: float) -> float:
            return pad + (height - pad - pad_bottom) * (y_max - y) / (y_max - y_min)  # noqa: B023

        parts = [f'<svg class="curve-svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                 f'role="img" xmlns="http://www.w3.org/2000/svg">',
                 f'<line x1="{pad_left}" y1="{height - pad_bottom}" x2="{width - pad}" y2="{height - pad_bottom}" '
                 f'stroke="#999"/><line x1="{pad_left}" y1="{pad}" x2="{pad_left}" y2="{height - pad_bottom}" '
                 f'stroke="#999"/>',
                 f'<text x="{pad_left - 4}" y="{pad + 9}" font-size="10" text-anchor="end">{y_max:.4g}</text>',
                 f'<text x="{pad_left - 4}" y="{height - pad_bottom}" font-size="10" text-anchor="end">'
                 f'{y_min:.4g}</text>',
                 f'<text x="{pad_left}" y="{height - 6}" font-size="10">1</text>',
                 f'<text x="{width - pad}" y="{height - 6}" font-size="10" text-anchor="end">episode {x_max + 1}'
                 '</text>']
        legend: dict[str, str] = {}
        for (agent, model, seed, train_seed), values in sorted(streams.items(), key=lambda item: str(item[0])):
            colour = colours.setdefault((agent, model), PALETTE[len(colours) % len(PALETTE)])
            label = f"{agent}" + (f" ({model})" if model else "")
            legend[label] = colour
            values.sort()
            title = _escape(f"{label} seed {seed}" + (f" train seed {train_seed}" if train_seed is not None else "")
                            + ": " + ", ".join(f"{y:g}" for _, y in values))
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)
            parts.append(f'<g class="stream"><title>{title}</title>'
                         f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
                         + "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>'
                                   for x, y in values) + "</g>")
        parts.append("</svg>")
        heading = _escape(f"{env}" + (f" L{level}" if level is not None else ""))
        legend_html = "".join(f'<span><i style="background:{c}"></i>{_escape(label)}</span>'
                              for label, c in legend.items())
        charts.append(f'<div class="curve"><div><b>{heading}</b> <span class="muted">return per episode, '
                      f'{len(streams)} streams</span></div>{"".join(parts)}<div class="legend">{legend_html}</div>'
                      f"</div>")
    if single:
        charts.append(f'<p class="muted single-episode">One episode a stream, so no curve: {", ".join(single)} '
                      "(their returns are in the table below; at L3 an agent learns across several episodes).</p>")
    return "".join(charts)


def _escape(text: str) -> str:
    return str(markupsafe.escape(text))


@functools.cache
def _page_template() -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(STATIC_DIR)), autoescape=True)
    return environment.get_template("page.html.j2")


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """The run dirs at or below ``paths`` (dirs holding an episodes file, shards included), each once.

    Raises:
        ViewerError: a path does not exist or holds no run dir.
    """
    found: dict[Path, None] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise ViewerError(f"no run dir at {path}")
        dirs = sorted({file.parent for file in episode_files(path)})
        if not dirs:
            raise ViewerError(f"no run dirs under {path} (no episodes.jsonl found)")
        found.update(dict.fromkeys(d.resolve() for d in dirs))
    return list(found)


def write_viewer(run_dirs: Sequence[str | Path], out_path: str | Path, *, frames: str = "all",
                 max_frames: int = DEFAULT_MAX_FRAMES, frame_width: int = DEFAULT_FRAME_WIDTH) -> Path:
    """Write the viewer of every run dir at or below ``run_dirs`` to ``out_path`` (one HTML file).

    Args:
        run_dirs: run dirs, or folders holding run dirs (e.g. ``runs/compare``).
        out_path: the HTML file to write (its folder is created).
        frames: which episodes get replayed frames: ``"all"``, ``"first-episode"`` (episode 0 of each stream)
            or ``"none"``.
        max_frames: at most this many frames in the whole file (episodes in table order until it runs out).
        frame_width: thumbnail width in pixels.

    Returns:
        ``out_path``.

    Raises:
        ViewerError: no run dirs, or a bad option.
    """
    if frames not in FRAME_MODES:
        raise ViewerError(f"frames must be one of {', '.join(FRAME_MODES)}, got {frames!r}")
    if max_frames < 0 or frame_width < 16:
        raise ViewerError(f"max_frames must be >= 0 and frame_width >= 16, got {max_frames} and {frame_width}")
    runs = [_Run.load(run_dir) for run_dir in find_run_dirs(run_dirs)]
    entries = sorted(((run, row) for run in runs for row in run.rows), key=lambda item: _sort_key(item[1]))
    table = [_table_row(index, run, row) for index, (run, row) in enumerate(entries)]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    budget = _FrameBudget(frames, max_frames)
    texts = _TextTable()

    def chunks() -> Iterator[dict[str, str]]:
        envs: dict[Path, Any] = {}  # one replay env per run dir, or the error that made it unusable
        try:
            for (run, row), shown in zip(entries, table, strict=True):
                key = EpisodeKey.of(row)
                steps = run.steps.get(key, [])
                calls = [texts.call(call, run.transcript) for call in sorted(run.calls.get(key, []),
                                                                             key=lambda call: call["call"])]
                episode_frames = _EpisodeFrames()
                if steps and run.recorded is not None and budget.wants(key):
                    try:
                        if run.run_dir not in envs:
                            envs[run.run_dir] = make_run_env(run.recorded.setup, render_mode="rgb_array")
                        if isinstance(envs[run.run_dir], Exception):
                            raise envs[run.run_dir]
                        seed = run.recorded.setup.reset_seed(key.seed, key.episode)  # under the run's protocol
                        episode_frames = _replay_frames(envs[run.run_dir], seed, steps, budget, frame_width)
                    except Exception as error:  # frames are extras: the page is written without them
                        envs.setdefault(run.run_dir, error)
                        logger.warning("no frames for %s: %s: %s", key, type(error).__name__, error)
                        episode_frames.note = f"No frames: the replay failed ({type(error).__name__}: {error})."
                elif steps and run.recorded is None:
                    episode_frames.note = f"No frames: {run.why_no_steps}"
                if not steps:
                    shown["no_steps"] = ("no steps recorded: a failed episode keeps none" if shown["status"] != DONE
                                         else run.why_no_steps or "no steps recorded for this episode")
                shown["frame_note"] = episode_frames.note
                shown["frames"] = sum(frame is not None for frame in episode_frames.frames)
                # A step's raw replies are its calls' texts when the run has a transcript: not twice in the page.
                dropped = {*IDENTITY_FIELDS, "replies"} if calls else set(IDENTITY_FIELDS)
                steps_out = [{k: v for k, v in step.items() if k not in dropped} for step in steps]
                yield {"id": f"tg-ep-{shown['id']}", "json": _script_json({
                    "steps": steps_out, "calls": calls, "frames": episode_frames.frames,
                    "final_observation": episode_frames.final_observation})}
        finally:
            for env in envs.values():
                if not isinstance(env, Exception):
                    env.close()
        yield {"id": "tg-texts", "json": _script_json(texts.items)}
        yield {"id": "tg-meta", "json": _script_json({"page_steps": PAGE_STEPS, "episodes": table,
                                                      "runs": [str(run.run_dir) for run in runs]})}

    names = sorted({str(run.run_dir.name) for run in runs})
    summary = (f"{len(table)} episodes from {len(runs)} run dir{'s' if len(runs) != 1 else ''}: "
               + ", ".join(names[:6]) + (" ..." if len(names) > 6 else ""))
    page = _page_template().generate(
        title="TextGym episodes", summary=summary, generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        css=(STATIC_DIR / "viewer.css").read_text(), js=(STATIC_DIR / "viewer.js").read_text(),
        curves=_curves_svg(table), chunks=chunks())
    tmp = out_path.with_name(out_path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for piece in page:
            handle.write(piece)
    tmp.replace(out_path)  # a viewer open in a browser never sees a half-written file
    logger.info("viewer: %d episodes, %d frames, %.1f MB -> %s", len(table), max_frames - budget.remaining,
                out_path.stat().st_size / 1e6, out_path)
    return out_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="textgym-view", description="Write one self-contained HTML file to browse the episodes, transcripts "
                                         "and replayed frames of run dirs (opens from disk, no server).")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run dirs, or folders holding run dirs")
    parser.add_argument("--out", help=f"HTML file to write (default: RUN_DIR/{VIEWER_FILE} for one RUN_DIR, "
                                      f"./{VIEWER_FILE} for several)")
    parser.add_argument("--frames", choices=FRAME_MODES, default="all",
                        help="episodes whose frames are replayed and embedded (default: all)")
    parser.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                        help=f"at most this many frames in the file (default: {DEFAULT_MAX_FRAMES})")
    parser.add_argument("--frame-width", type=int, default=DEFAULT_FRAME_WIDTH,
                        help=f"thumbnail width in pixels (default: {DEFAULT_FRAME_WIDTH})")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: ``textgym-view RUN_DIR... [--out FILE] [--frames MODE] [--max-frames N]``."""
    args = _parser().parse_args(argv)
    out = Path(args.out) if args.out else (Path(args.run_dirs[0]) / VIEWER_FILE if len(args.run_dirs) == 1
                                           else Path(VIEWER_FILE))
    try:
        path = write_viewer(args.run_dirs, out, frames=args.frames, max_frames=args.max_frames,
                            frame_width=args.frame_width)
    except (ViewerError, ReplayError) as error:
        print(f"textgym-view: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"viewer: {path.resolve().as_uri()} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
