# The two commands of the README's quick start, plus the benchmark suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := examples/ctbench-example-plugin
# Worker processes for `make demo`: one per core, at most 4 (each holds its own torch).
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: demo test lint bench install install-test example-plugin

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

demo: install
	$(BIN)/ctbench run --jobs $(JOBS)

# pytest-xdist: one test process per core (at most 4); whole files stay on one process, so a
# file's module fixtures are built once. Tests run one torch thread each, so this is ~1.5x on 2 cores.
test: install-test lint
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile
	$(MAKE) example-plugin

# The architecture's contracts: ruff (pyflakes, bugbear, import order, absolute imports) and
# import-linter (the layer order and no import cycles; pyproject.toml [tool.importlinter]).
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

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

# The performance suite (tests/perf; README "Performance"): side-by-side timings, their
# ratios as one table at the end, perf-report.json. It also times the embedded default's cold and
# warm `ctbench run` (~12 min more on 2 cores); `make bench CTBENCH_BENCH_EMBEDDED=0` leaves it out.
CTBENCH_BENCH_EMBEDDED ?= 1
bench: install-test
	CTBENCH_BENCH_EMBEDDED=$(CTBENCH_BENCH_EMBEDDED) $(BIN)/python -m pytest tests/perf --benchmark-enable \
	    --benchmark-json=bench.json
