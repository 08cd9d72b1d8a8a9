# make run: set up .venv and run the main job; make test: set up, lint and run the tests.
# make setup-vllm / test-vllm: the same for .venv-vllm, the project plus vLLM (opt-in);
# make setup-verl / test-verl: for .venv-verl, the project plus verl (opt-in).
.PHONY: setup run test lint test-all setup-vllm test-vllm setup-verl test-verl bench clean

PY := .venv/bin/python
VLLM_PY := .venv-vllm/bin/python
VERL_PY := .venv-verl/bin/python

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/setup.sh scripts/venv_torch.sh
	bash scripts/setup.sh
	touch $@

setup-vllm: .venv-vllm/.installed

.venv-vllm/.installed: pyproject.toml scripts/setup_vllm.sh scripts/venv_torch.sh
	bash scripts/setup_vllm.sh
	touch $@

setup-verl: .venv-verl/.installed

.venv-verl/.installed: pyproject.toml scripts/setup_verl.sh scripts/venv_torch.sh
	bash scripts/setup_verl.sh
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

# the tests marked verl: the harness's advantages through verl's compute_advantage and its losses
# against verl's, on the CPU; verl's outputs must match tests/golden/verl/*.json, which make test checks
# against the harness without verl (RISKPO_BENCH_WRITE_GOLDEN=1 make test-verl rewrites them)
test-verl: setup-verl
	$(VERL_PY) -m pytest -q -m verl tests/verl_equivalence

bench: setup
	$(PY) scripts/bench_advantages.py
	$(PY) scripts/bench_humaneval.py

clean:
	rm -rf .venv .venv-vllm .venv-verl .pytest_cache .hypothesis
