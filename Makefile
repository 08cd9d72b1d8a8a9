# make run: set up .venv and run the main job; make test: set up and run the tests.
.PHONY: setup run test test-all bench clean

PY := .venv/bin/python

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# The main job: RiskPO on the arith task with the project's tiny model, on the CPU.
run: setup
	$(PY) -m bench.run

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

bench: setup
	$(PY) scripts/bench_advantages.py
	$(PY) scripts/bench_humaneval.py

clean:
	rm -rf .venv .pytest_cache .hypothesis
