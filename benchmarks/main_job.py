"""Time the README's main job from a cold cache: a fresh ``TEXTGYM_CACHE`` and results dir, the real command.

    python benchmarks/main_job.py [--runs 3] [--keep DIR] [-- extra textgym-compare overrides]

Each run starts ``.venv/bin/textgym-compare`` (as the README does, with its own config) in a new temporary folder,
with ``TEXTGYM_CACHE`` pointing into it, so nothing is reused: the embedded model's Q8_0 copy is made again, no
LLM reply is cached, PPO trains, and the few-shot trajectories are rolled out again. wandb runs offline into the
results dir as it does by default. It prints the command's own estimate, then per run the wall time and its phases
(from the command's log lines: start-up, PPO, the random anchors, the language agents, report and viewer), and the
report's table of the last run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMAND = REPO_ROOT / ".venv" / "bin" / "textgym-compare"
# Log lines that end each phase, in order, and the phase they end.
PHASE_ENDS = (("textgym-compare: ", "start-up (imports, config)"), ("PPO done after", "PPO (train and evaluate)"),
              ("random anchors done after", "random anchors"), ("language agents done after", "language agents"),
              ("wall time:", "report and viewer"))


@dataclass
class Run:
    """One timed run: wall time, the seconds at which each phase ended, and the command's output."""

    wall_s: float
    returncode: int
    phase_ends: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def phases(self) -> list[tuple[str, float]]:
        """(phase, seconds) in order; a phase whose end was not seen (a failed run) is left out."""
        durations, previous = [], 0.0
        for _, name in PHASE_ENDS:
            if name in self.phase_ends:
                durations.append((name, self.phase_ends[name] - previous))
                previous = self.phase_ends[name]
        durations.append(("exit", self.wall_s - previous))
        return durations


def time_run(workdir: Path, overrides: list[str]) -> Run:
    """Run the main job once in ``workdir`` with a cache of its own; the output streams to this terminal."""
    env = {**os.environ, "TEXTGYM_CACHE": str(workdir / "cache"), "PYTHONUNBUFFERED": "1"}
    args = [str(COMMAND), f"results_dir={workdir / 'runs' / 'compare'}", *overrides]
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    run = Run(wall_s=0.0, returncode=0)
    assert process.stdout is not None
    for line in process.stdout:
        elapsed = time.perf_counter() - started
        run.lines.append(line.rstrip("\n"))
        print(f"[{elapsed:6.1f}s] {line}", end="", flush=True)
        for marker, name in PHASE_ENDS:
            if marker in line and name not in run.phase_ends:
                run.phase_ends[name] = elapsed
    run.returncode = process.wait()
    run.wall_s = time.perf_counter() - started
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs, each from a cold cache (default 1)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each run's folder under this dir (default: delete them)")
    parser.add_argument("overrides", nargs="*", help="extra textgym-compare overrides (after --)")
    args = parser.parse_args()
    if not COMMAND.exists():
        parser.error(f"{COMMAND} not found: run `bash scripts/setup.sh` first")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    runs = []
    for index in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix=f"main-job-{index}-", dir=args.keep))
        try:
            print(f"--- run {index + 1}/{args.runs} in {workdir}", flush=True)
            runs.append(time_run(workdir, args.overrides))
        finally:
            if args.keep is None:
                shutil.rmtree(workdir, ignore_errors=True)
    print("\n=== main job from a cold cache ===")
    estimate = next((line for line in runs[0].lines if line.startswith("textgym-compare: ")), None)
    if estimate:
        print(estimate)
    for index, run in enumerate(runs, 1):
        phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in run.phases())
        print(f"run {index}: {run.wall_s / 60:.1f} min ({run.wall_s:.0f} s), exit {run.returncode}: {phases}")
    table = [line for line in runs[-1].lines if line.startswith("|")]
    if table:
        print("\n" + "\n".join(table))
    sys.exit(max(run.returncode for run in runs))


if __name__ == "__main__":
    main()
