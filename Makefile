# Two commands do all the set-up on a fresh machine (Python >= 3.11 and, for the tests, PostgreSQL):
#   make simulate   - the main job on the shared Boston sample
#   make test       - lint, type-check and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
STAMP := $(VENV)/.installed

.PHONY: install simulate test lint bench demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

simulate: $(STAMP)
	$(BIN)/duban simulate --profile boston311 $(DATA)/boston311_2022_sample.csv --summary-json .duban/boston311-summary.json

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy duban workflows activities events projections
	$(BIN)/lint-imports

# The topology tests (their own servers and processes, mostly waiting on them) run beside the rest,
# so the suite takes the time of the longer of the two; their report follows the rest's.
test: lint
	@mkdir -p .duban
	@$(BIN)/pytest -q -m topology > .duban/topology-tests.log 2>&1 & topo=$$!; \
	$(BIN)/pytest -q -m "not topology"; rest=$$?; \
	wait $$topo; topology=$$?; \
	echo "--- the topology tests (pytest -m topology) ---"; cat .duban/topology-tests.log; \
	exit $$(( rest || topology ))

bench: $(STAMP)
	$(BIN)/python bench/bench_simulate.py
	$(BIN)/python bench/bench_order.py
	$(BIN)/python bench/bench_rankings.py
	$(BIN)/python bench/bench_gateway.py
	$(BIN)/python bench/bench_production.py
	$(BIN)/python bench/bench_ledger.py
	$(BIN)/python bench/bench_import.py

demo: $(STAMP)
	$(BIN)/duban demo

clean:
	rm -rf $(VENV) .duban
