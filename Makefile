# Outbound-events ETL. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LANDING ?= data/landing
WAREHOUSE ?= data/warehouse
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run reprocess validate metrics report contract contract-docs test test-fast lint format bench sample clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with its test tools

run: $(STAMP) ## Run the nightly job on the sample feeds, then write the report
	$(BIN)/etl run --landing $(LANDING) --warehouse $(WAREHOUSE); code=$$?; \
	  [ $$code -eq 0 -o $$code -eq 3 ] || exit $$code; \
	  $(BIN)/etl report --warehouse $(WAREHOUSE) && $(BIN)/etl metrics --warehouse $(WAREHOUSE) && exit $$code

reprocess: $(STAMP) ## Rebuild event dates: make reprocess FROM=YYYY-MM-DD TO=YYYY-MM-DD
	@[ -n "$(FROM)" -a -n "$(TO)" ] || { echo "usage: make reprocess FROM=YYYY-MM-DD TO=YYYY-MM-DD"; exit 2; }
	$(BIN)/etl reprocess --from $(FROM) --to $(TO) --landing $(LANDING) --warehouse $(WAREHOUSE)

validate: $(STAMP) ## Check the landing files against the contract (writes nothing; exit 3: violations found)
	@$(BIN)/etl validate $(LANDING); code=$$?; \
	  [ $$code -ne 3 ] || echo "make validate: exit 3 means records that break the contract were found (listed above)"; \
	  exit $$code

metrics: $(STAMP) ## Show the lifetime campaign funnels
	$(BIN)/etl metrics --warehouse $(WAREHOUSE)

report: $(STAMP) ## Write the HTML funnel report to $(WAREHOUSE)/report.html
	$(BIN)/etl report --warehouse $(WAREHOUSE)

contract: $(STAMP) ## Print the contract generated from the pandera models
	$(BIN)/etl contract

contract-docs: $(STAMP) ## Regenerate the README's contract section from the models
	$(BIN)/python -m etl.contract_docs README.md

test: $(STAMP) ## Run every test
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## Run the tests not marked heavy (no browser, no big generated feeds)
	$(BIN)/python -m pytest -m "not heavy"

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP) ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

sample: $(STAMP) ## Regenerate the sample feeds in data/landing (deterministic)
	$(BIN)/python bench/feedgen.py --sample $(LANDING)

bench: $(STAMP) ## Benchmarks against the DuckDB peer and of nightly increments (EVENTS=2000000)
	$(BIN)/python bench/run.py $(EVENTS)

clean: ## Remove the generated warehouse
	rm -rf $(WAREHOUSE)
