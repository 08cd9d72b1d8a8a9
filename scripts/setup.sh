#!/usr/bin/env bash
# Creates .venv and installs the project into it (editable, with the test tools).
#
# torch is installed first, pinned, and held by a constraints file (scripts/venv_torch.sh).
# vLLM is never installed here: `pip install -e '.[vllm]'` on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_torch.sh
venv_with_torch .venv
pip install -c .venv/constraints.txt -e ".[dev]"
