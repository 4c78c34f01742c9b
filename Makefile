# The two commands of the README's quick start, plus the benchmark suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := examples/ctbench-example-plugin

.PHONY: demo test bench install install-test example-plugin

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
	$(MAKE) example-plugin

# The out-of-tree plugin path, as a plugin author's user meets it: install the example
# package, see its task listed from its entry point, and run it on a small DICOM folder.
example-plugin: install
	$(BIN)/pip install --quiet $(EXAMPLE)
	$(BIN)/ctbench tasks list | grep -E "^example-chest-vs-abdomen .*entry point 'example'"
	rm -rf .example-plugin-run
	$(BIN)/python -m ctbench_example_plugin.make_data .example-plugin-run/data
	$(BIN)/ctbench run --workdir .example-plugin-run/work --tasks example-chest-vs-abdomen \
	    --data example-chest-vs-abdomen=.example-plugin-run/data/dicom --checkpoints random \
	    --protocols linear --scales 1 --seeds 42 | tail -1 | grep -q index.html
	grep -q 'data-task="example-chest-vs-abdomen"' .example-plugin-run/work/site/index.html
	rm -rf .example-plugin-run
	@echo "example plugin: discovered from its entry point and evaluated"

bench: install-test
	$(BIN)/python -m pytest tests/perf --benchmark-enable --benchmark-json=bench.json
