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
	$(BIN)/pip install --quiet -e '.[chain]'
	@touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mpcnet demo

# Three tiers of tests (the property tests' example counts are set in tests/conftest.py):
# check  the edit-test loop, under a minute: units, and MPC run in-process (one MPyC party:
#        the pricing arithmetic, the seam's contracts); no party processes ("heavy" tests),
#        no broker, no node daemons, no clusters
# test   everything, as CI runs it: also real clusters (node processes and a broker), faults,
#        crashes and the short soak; property tests replay the same 50 examples each
#        (it ends with the 25 slowest tests: where the suite's time goes).  Two worker
#        processes (pytest-xdist), each taking whole test files (module fixtures such as
#        shared clusters stay one per file) and ports of its own (deploy.cluster.free_port):
#        most tests wait on node processes, so two run at once on two cores
# soak   long and randomised: the 200-job soak, 10,000 fresh examples per property and 1,000
#        single-deviation trials of a party cheating inside MPC sessions (issue 13)
test: $(TSTAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

check: $(TSTAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not slow and not containers and not heavy"

soak: $(TSTAMP)
	$(BIN)/python -m pytest -q -s -m slow -o addopts=""
	MPCNET_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/test_fuzz_parsers.py \
		tests/test_envelope.py tests/test_evm_policy.py tests/test_frost.py
	MPCNET_DEVIATION_TRIALS=1000 MPCNET_DEVIATION_SEED=$$(date +%s) $(BIN)/python -m pytest \
		-q -s tests/adversarial/test_mpc_deviation.py

bench: $(TSTAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
