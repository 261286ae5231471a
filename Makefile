# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint pytest serve clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lianjie needs Python >= 3.11"'
	@$(PYTHON) -m venv $(VENV) || { echo "could not create $(VENV): on Debian, apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

## make run: install, migrate the embedded database, load the demo world if empty, serve on HOST:PORT
run: $(VENV)/.installed-run
	$(BIN)/lianjie db upgrade
	$(BIN)/lianjie demo load --if-empty
	$(BIN)/lianjie serve --host $(HOST) --port $(PORT)

## make test: lint (ruff, mypy) and the whole test suite
test: lint pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/pytest -n auto

clean:
	rm -rf $(VENV) .pytest-var .mypy_cache .ruff_cache .pytest_cache
