# Quick start: `make demo` runs the default experiment, `make test` runs the test suite (the CI gate).
# Both create .venv if it is missing and install torch 2.13.0 (CPU wheel) first, then the project.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The project's extras for development; add yours here (one word each) rather than editing the install line.
EXTRAS := dev,hf,docs,data,cluster
TEST_ENV := WANDB_MODE=disabled HF_HUB_OFFLINE=1
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup demo test test-fast lint docs clean

$(STAMP): pyproject.toml constraints.txt
	@echo "== hffm setup (first time: a few minutes; pip shows each package as it installs)"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@echo "== 1/2 torch 2.13.0, the CPU wheel (first, so that nothing pulls a CUDA build)"
	$(BIN)/pip install --progress-bar on torch==2.13.0
	@echo "== 2/2 hffm and its dependencies, extras [$(EXTRAS)], pinned by constraints.txt"
	$(BIN)/pip install --progress-bar on -c constraints.txt -e '.[$(EXTRAS)]'
	@echo "== done. setuptools' 'Editable installation' notice above is informational: see docs/getting-started.md"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	WANDB_MODE=offline $(BIN)/hffm-train

# The CI gate (.ci/run): every test, slow ones included, then lint, types and the strict docs build.
test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -x -q
	$(BIN)/ruff check hffm solvers tests experiments docgen
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --quiet

# The inner loop: no test marked slow (no process launches, installs or builds), on two pytest-xdist workers.
test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -x -q -m "not slow" -n 2

lint: $(STAMP)
	$(BIN)/ruff check hffm solvers tests experiments docgen
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) outputs multirun wandb site .pytest_cache .ruff_cache
