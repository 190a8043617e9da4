# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test check soak install bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mpcnet demo

test: $(TSTAMP)
	$(BIN)/python -m pytest -q

# the edit-test loop: units and in-process MPC, no cluster processes, fewer fuzz replays
check: $(TSTAMP)
	MPCNET_FUZZ_REPLAY=100 $(BIN)/python -m pytest -q -m "not e2e and not slow and not containers"

soak: $(TSTAMP)
	$(BIN)/python -m pytest -q -s -m slow -o addopts=""
	MPCNET_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/test_fuzz_parsers.py

bench: $(TSTAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
