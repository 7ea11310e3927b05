# Two entry points for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
# Override for a CUDA build, e.g. `make run TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"`.
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin

.PHONY: install run test test-fast lint organism index bench

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Serves at once; a missing latent index is built beside the server (see README).
run: install
	$(BIN)/python -m app serve --host $(HOST) --port $(PORT)

index: install
	$(BIN)/python -m app index ensure

test: install
	scripts/ensure-services
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow and not browser"

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/lint-imports

organism: install
	$(BIN)/python -m app organism build --small  # the CPU recipe (models/organism/PREREGISTRATION.md); drop --small for the full one

bench: install
	$(BIN)/python bench/steering.py
	$(BIN)/python bench/index.py all
