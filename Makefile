# The two commands a newcomer needs: `make up` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
UV := UV_PYTHON_DOWNLOADS=never uv run --locked

.PHONY: help install up down status test test-fast layout lint bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install what is missing (system packages, uv, Python env, Flink jars)
	@bash scripts/bootstrap.sh

up: install ## start the whole platform in the foreground (Ctrl-C stops it)
	@$(UV) ece up

down: ## stop a running `make up` from another terminal
	@$(UV) ece down

status: ## health of every part
	@$(UV) ece status

test: install ## run the whole test suite against the real parts (what CI runs)
	@$(UV) pytest -p no:cacheprovider $(PYTEST_ARGS)

test-fast: ## the unit tests only (no platform, under a minute)
	@$(UV) pytest -p no:cacheprovider tests/unit $(PYTEST_ARGS)

layout: ## the layout's floors: prints nothing when the tree is right
	@$(UV) python -m tests.unit.layout_check

lint: ## ruff and mypy
	@$(UV) ruff check .
	@$(UV) mypy api ece ops streaming orchestration warehouse quality bench

bench: ## benchmarks (print ratios against a baseline measured in the same run)
	@for b in bench/bench_*.py; do m=$$(basename $$b .py); echo "== $$m"; $(UV) python -m bench.$$m || exit 1; done

clean: ## remove all local state (data/)
	@rm -rf data
