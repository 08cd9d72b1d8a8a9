# Sourced by setup.sh, setup_vllm.sh and setup_verl.sh: `venv_with_torch DIR` creates the virtual
# environment DIR (if need be), defines `pip` for it, installs the pinned torch first and writes
# DIR/constraints.txt, which keeps every later resolution on that torch.
#
# On a CPU-only machine `pip install torch==$TORCH_VERSION` takes the local CPU wheel, and with it
# in place nothing later pulls a CUDA build; with an NVIDIA driver the same pin gets the normal
# CUDA build from the index.
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}

venv_with_torch() {
  VENV_DIR=$1
  if [ ! -x "$VENV_DIR/bin/python" ]; then
    "$PYTHON" -m venv "$VENV_DIR"
  fi
  pip() { "$VENV_DIR/bin/python" -m pip --disable-pip-version-check -q "$@"; }
  if ! "$VENV_DIR/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" \
      2>/dev/null; then
    pip install "torch==$TORCH_VERSION"
  fi
  echo "torch==$TORCH_VERSION" > "$VENV_DIR/constraints.txt"
}
