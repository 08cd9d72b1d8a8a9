#!/usr/bin/env bash
# Creates .venv and installs the project into it (editable, with the test tools).
#
# torch is installed first, pinned: on a CPU-only machine `pip install torch==2.13.0` takes
# the local CPU wheel, and with it in place nothing later pulls a CUDA build; on a machine
# with an NVIDIA driver the same pin gets the normal CUDA build from the index.
# vLLM is never installed here: `pip install -e '.[vllm]'` on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  pip install "torch==$TORCH_VERSION"
fi
# The constraint keeps every later resolution on the torch just installed.
echo "torch==$TORCH_VERSION" > .venv/constraints.txt
pip install -c .venv/constraints.txt -e ".[dev]"
