# `make run` and `make test` each bootstrap .venv on a machine that has only python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Runs dmalint on the sample driver tree; exits 0 when the run worked, whatever it found.
run: $(STAMP)
	@$(BIN)/dmalint check --trace samples/ ; rc=$$?; \
	if [ $$rc -le 1 ]; then echo "make run: dmalint ran (exit $$rc: $$( [ $$rc -eq 1 ] && echo findings || echo clean ))"; exit 0; \
	else echo "make run: dmalint failed (exit $$rc)"; exit $$rc; fi

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .dmalint_cache
