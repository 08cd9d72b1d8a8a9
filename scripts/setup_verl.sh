#!/usr/bin/env bash
# Creates .venv-verl: the project plus verl, kept apart from .venv (make setup-verl).
#
# verl's base package (no extra) needs neither torch nor CUDA to install, and its
# `verl.trainer.ppo.core_algos` (the advantage and policy-loss registries the plug-in uses)
# runs on the CPU. Every verl extra ([gpu], [vllm], [sglang], ...) pins its own torch, which
# clashes with the project's pin, so none is installed here: on a GPU cluster build verl's
# environment the way verl documents it and `pip install --no-deps -e .` the project into it.
# The same torch pin as scripts/setup.sh is installed first and held by a constraints file, so
# pip never swaps it for a CUDA build. VERL_VERSION picks the release (the one tested is the
# default).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_torch.sh
VERL_VERSION=${VERL_VERSION:-0.9.1}
VENV=${VERL_VENV:-.venv-verl}

venv_with_torch "$VENV"
# TransferQueue and the rest: what verl's v1 trainer imports beyond the base package (its verl-core
# extra, less the CUDA and multimodal parts), for the bench_sync trainer of bench/verl_register.py
pip install -c "$VENV/constraints.txt" "verl==$VERL_VERSION" "TransferQueue>=0.1.10" pyzmq msgspec fastapi uvicorn \
  cachetools -e ".[dev,verl]"
# The plug-in registers itself on `import verl` (the verl.plugins entry point); this line fails
# if it did not.
"$VENV/bin/python" -c "
import verl, torch
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
assert 'riskpo' in ADV_ESTIMATOR_REGISTRY, 'the riskpo-bench verl plug-in did not register'
print(f'$VENV: verl {verl.__version__}, torch {torch.__version__}')"
