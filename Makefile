# The two commands of the README's quick start, plus the benchmark suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

demo: install
	$(BIN)/ctbench run

test: install-test
	$(BIN)/python -m pytest

bench: install-test
	$(BIN)/python -m pytest tests/perf --benchmark-enable --benchmark-json=bench.json
