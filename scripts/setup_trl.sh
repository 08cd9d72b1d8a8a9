#!/usr/bin/env bash
# Creates .venv-trl: the project plus TRL, kept apart from .venv, for scripts/bench_trl.py (the
# harness's training step against TRL's GRPOTrainer on the same workload). Nothing else needs it.
#
# The same torch pin as scripts/setup.sh is installed first and held by a constraints file, so
# TRL's dependencies (accelerate, datasets) never swap it for a CUDA build. TRL_VERSION picks the
# release (the one measured is the default).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_torch.sh
TRL_VERSION=${TRL_VERSION:-1.16.0}
VENV=${TRL_VENV:-.venv-trl}

venv_with_torch "$VENV"
pip install -c "$VENV/constraints.txt" "trl==$TRL_VERSION" -e .
"$VENV/bin/python" -c "
import trl, torch, transformers
print(f'$VENV: trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}')"
