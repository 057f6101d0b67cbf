# The two commands: `make run` (the system on embedded defaults) and `make test`.
.DEFAULT_GOAL := help
.PHONY: help setup run stop test lint format

help:
	@echo "make run     run the system on this machine (SQLite Airflow, local lake)"
	@echo "make stop    stop what make run started"
	@echo "make test    lint + the whole test suite (what CI runs)"
	@echo "make format  apply ruff's formatting and import order"

setup:
	@scripts/setup.sh

run: setup
	@scripts/run.sh

stop: setup
	@.venv/bin/anomalyops demo down

test: setup
	@scripts/test.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .
