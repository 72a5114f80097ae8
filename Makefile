# The two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format audit bench clean

install: $(STAMP)

# Reinstall only when the project's metadata changes: quick when already done.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: install
	$(BIN)/python -m cohortsync.demo

# The suite runs on PYTEST_WORKERS processes (pytest-xdist; 0: serially, in this process).
# --dist loadscope keeps a module's tests on one worker, so its module-scoped
# fixtures are built once; --durations names the slowest tests in every log.
PYTEST_WORKERS ?= 3
test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --durations=25 $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# pip-audit over the installed packages; fails on a known vulnerability, and says
# plainly when the vulnerability service could not be reached (.ci/audit).
audit: install
	$(BIN)/python .ci/audit

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: install
	$(BIN)/python bench/receiver.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/mirror.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/rest_attribute.py
	$(BIN)/python bench/rest_track.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
