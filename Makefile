PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve worker-dev test lint bench bench-quick clean venv dlib-blas

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	@# A venv that opted into the OpenBLAS build keeps it: pip just put dlib-bin back.
	if [ -f $(DLIB_BLAS_STAMP) ]; then $(INSTALL_DLIB_BLAS); fi
	touch $(STAMP)

venv: $(STAMP)

# dlib compiled against OpenBLAS computes face embeddings 2-3x faster than the dlib-bin wheel,
# but building it takes over 12 minutes and 1.4 GB of memory, so it is opt-in: the wheel is
# built once into DLIB_WHEELS (outside the repository, shared by every checkout) and reused.
DLIB_VERSION ?= 20.0.1
DLIB_WHEELS ?= $(HOME)/.cache/facefleet/wheels
DLIB_BLAS_STAMP := $(VENV)/.dlib-blas
INSTALL_DLIB_BLAS = $(BIN)/pip uninstall --quiet --yes dlib-bin && \
	$(BIN)/pip install --quiet --no-deps --force-reinstall $(DLIB_WHEELS)/dlib-$(DLIB_VERSION)-*.whl

dlib-blas: $(STAMP)
	@dpkg -s libopenblas-dev >/dev/null 2>&1 || { \
	  echo "installing Debian's libopenblas-dev (needs root)"; \
	  apt-get install -y -qq libopenblas-dev; }
	@command -v cmake >/dev/null || { echo "cmake is needed: apt-get install cmake"; exit 1; }
	@if ls $(DLIB_WHEELS)/dlib-$(DLIB_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "reusing $$(ls $(DLIB_WHEELS)/dlib-$(DLIB_VERSION)-*.whl)"; \
	else \
	  echo "building dlib $(DLIB_VERSION) against OpenBLAS into $(DLIB_WHEELS) (12+ minutes, once)"; \
	  mkdir -p $(DLIB_WHEELS) && \
	  $(BIN)/pip wheel --no-deps --no-binary dlib --wheel-dir $(DLIB_WHEELS) dlib==$(DLIB_VERSION); \
	fi
	$(INSTALL_DLIB_BLAS)
	touch $(DLIB_BLAS_STAMP)
	$(BIN)/python -c 'from facefleet.face.build import dlib_build; b = dlib_build(); print("dlib build:", b); raise SystemExit(0 if b.blas else 1)'

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
