PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve worker-dev test lint bench clean venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/facefleet demo

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

# Each benchmark prints its figures as ratios against a baseline measured in the same run;
# docs/performance.md records the latest ones.
bench: $(STAMP)
	$(BIN)/python bench/heartbeat.py
	$(BIN)/python bench/ws_fanout.py
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/gallery.py
	$(BIN)/python bench/replicas.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
