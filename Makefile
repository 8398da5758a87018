# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install the package into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= .demo/synthetic-sousa
DEMO_SAMPLES ?= 200

.PHONY: demo test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalled when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/sousa-hf data synth $(DEMO_DIR) --samples $(DEMO_SAMPLES) --seed 0 --overwrite
	HF_HUB_OFFLINE=1 $(BIN)/sousa-hf data summary $(DEMO_DIR) --show-batch 4

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check sousa_hf tests benchmarks

clean:
	rm -rf $(VENV) .demo .pytest_cache
