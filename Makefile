# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the package into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= runs/quickstart

.PHONY: demo test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs with uv (from PyPI, into the venv): the same packages as pip in about 1.5 min instead of 3,
# most of it torch's CUDA libraries. `make INSTALLER=pip ...` uses pip alone. uv does not read pip's
# configuration, so a constraint file set there (a machine's pinned torch) is passed on. Bytecode is
# compiled at install (pip's default, not uv's): where PYTHONDONTWRITEBYTECODE is set, every fresh
# process would otherwise recompile torch and transformers, twice as slow to start.
INSTALLER ?= uv
PIP_CONSTRAINT ?= $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^global\.constraint='\(.*\)'$$/\1/p")

# Reinstalled when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
ifeq ($(INSTALLER),uv)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(if $(PIP_CONSTRAINT),--constraint $(PIP_CONSTRAINT)) -e '.[dev]'
else
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
endif
	touch $@

install: $(VENV)/.installed

# Trains the quickstart recipe (the suite's CNN on the built-in synthetic SOUSA) and prints its metrics.
demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/sousa-hf train recipes/quickstart.yaml --set output_dir=$(DEMO_OUT)

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check sousa_hf tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
