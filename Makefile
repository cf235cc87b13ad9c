# The two commands of the README's quick start:
#   make demo   set up, then run `rcyc invoke-local` on the embedded defaults (real Lambda emulator, local S3)
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test fixtures clean

$(BIN)/rcyc: pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-lock.txt
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

setup: $(BIN)/rcyc
	$(BIN)/rcyc rie install

demo: setup
	$(BIN)/rcyc invoke-local

test: setup
	$(BIN)/python -m pytest

fixtures: setup
	$(BIN)/python fixtures/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
