# Quick start: `make demo` runs the default experiment, `make test` runs the test suite.
# Both create .venv if it is missing and install torch 2.13.0 (CPU wheel) first, then the project.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,hf,cluster]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	WANDB_MODE=offline $(BIN)/hffm-train

test: $(STAMP)
	WANDB_MODE=disabled HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -x -q
	$(BIN)/ruff check hffm solvers tests experiments
	$(BIN)/mypy

lint: $(STAMP)
	$(BIN)/ruff check hffm solvers tests experiments
	$(BIN)/mypy

clean:
	rm -rf $(VENV) outputs multirun wandb .pytest_cache .ruff_cache
