# The README's quick start: `make demo` (main job) and `make test` (whole suite).
# Both create ./.venv on first use and install qsim into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install bench

$(BIN)/qsim: setup.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/qsim

install: $(BIN)/qsim

demo: $(BIN)/qsim
	$(BIN)/qsim demo --out demo-out

test: $(BIN)/qsim
	$(BIN)/python -m pytest

lint: $(BIN)/qsim
	$(BIN)/ruff check .

bench: $(BIN)/qsim
	$(BIN)/python bench/bench_speed.py
