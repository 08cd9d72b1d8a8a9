# make run: set up .venv and run the main job; make test: set up, lint and run the tests.
# make setup-vllm / test-vllm: the same for .venv-vllm, the project plus vLLM (opt-in).
.PHONY: setup run test lint test-all setup-vllm test-vllm bench clean

PY := .venv/bin/python
VLLM_PY := .venv-vllm/bin/python

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

setup-vllm: .venv-vllm/.installed

.venv-vllm/.installed: pyproject.toml scripts/setup_vllm.sh
	bash scripts/setup_vllm.sh
	touch $@

# The main job: RiskPO on the arith task with the project's tiny model, on the CPU.
run: setup
	$(PY) -m bench.run

# ruff (pyflakes, import order, bugbear; pyproject.toml) first, then the tests; tests/test_structure.py
# fails on an import cycle or a package importing one above it
test: setup lint
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

test-all: setup
	$(PY) -m pytest -q -m ""

# the tests marked vllm: the engine, and training and evaluation through it, on this machine's device
test-vllm: setup-vllm
	$(VLLM_PY) -m pytest -q -m vllm

bench: setup
	$(PY) scripts/bench_advantages.py
	$(PY) scripts/bench_humaneval.py

clean:
	rm -rf .venv .venv-vllm .pytest_cache .hypothesis
