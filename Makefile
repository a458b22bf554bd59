# Countersign: `make up` runs the whole stack, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := countersign workflows activities api cli devstack worker.py
# The workflow sandbox imports the workflow module afresh for every run; with
# bytecode on disk it loads it instead of compiling it each time (it matters
# where PYTHONDONTWRITEBYTECODE is set). Cheap when nothing changed.
COMPILE := $(BIN)/python -m compileall -q $(SOURCES)

.DEFAULT_GOAL := help

.PHONY: help install up worker api test test-faults lint format bench bench-breakdown demo ui-screenshot clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create the virtualenv and install the project with its dev tools

up: $(STAMP) ## Run Temporal dev server + worker + API on :7777 (Ctrl-C stops all)
	@$(COMPILE)
	$(BIN)/python -m devstack

demo: $(STAMP) ## Against `make up`: the Data Manager's request pauses, confirming completes it
	$(BIN)/python -m devstack.demo

ui-screenshot: $(STAMP) ## Redo docs/temporal-ui-paused-run.png (needs Debian's chromium)
	$(BIN)/python docs/screenshot.py

worker: $(STAMP) ## Run the worker against TEMPORAL_ADDRESS
	@$(COMPILE)
	$(BIN)/python worker.py

api: $(STAMP) ## Run the API on :7777 against TEMPORAL_ADDRESS
	$(BIN)/python -m api

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint ## Lint, type-check and run the whole test suite
	@$(COMPILE)
	$(BIN)/pytest -q -p no:cacheprovider; status=$$?; \
	  if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status

test-faults: $(STAMP) ## Only the fault-injection suite (COUNTERSIGN_FAULTS_LONG=1: the long run)
	@$(COMPILE)
	$(BIN)/pytest -q -p no:cacheprovider -m faults tests/faults

bench: $(STAMP) ## Countersign vs a same-work bare workflow; BENCH_ARGS='--small', '--profile'...
	@$(COMPILE) bench
	$(BIN)/python -m bench --docs $(BENCH_ARGS)

bench-breakdown: $(STAMP) ## The parts of a flow's worker CPU that the bare flow leaves out, alone
	@$(COMPILE) bench
	$(BIN)/python -m bench.breakdown

clean: ## Remove the virtualenv and local data
	rm -rf $(VENV) data
