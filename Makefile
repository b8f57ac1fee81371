PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve worker-dev test lint bench bench-quick clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

venv: $(STAMP)

# The dashboard's address is the first line it prints (the command itself is not echoed).
run: $(STAMP)
	@$(BIN)/facefleet demo

serve: $(STAMP)
	$(BIN)/facefleet serve

# One more worker against the local control plane: WORKER_ID=worker-002 make worker-dev
worker-dev: $(STAMP)
	FACEFLEET_WORKER_API_KEY=$${FACEFLEET_WORKER_API_KEY:-$$($(BIN)/python -c 'import json; print(json.load(open("data/default-tenant-keys.json"))["keys"]["worker"])')} \
	FACEFLEET_WORKER_STATE_DIR=$${FACEFLEET_WORKER_STATE_DIR:-data/workers/$${WORKER_ID:-default}} \
	$(BIN)/facefleet worker

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Each benchmark prints its figures as ratios against a baseline measured in the same run and
# exits 1 when it misses a target; docs/performance.md records the latest figures. Every
# benchmark runs to its end; the run fails at the end if any of them missed or failed.
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# A smoke run of each benchmark at small sizes (two to four minutes in all), not figures to record.
bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
