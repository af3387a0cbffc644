# Two commands on a fresh clone: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv if missing and installs what it needs; nothing is installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The gpu extra where an NVIDIA GPU answers, else cpu.
EXTRA  := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
# Real data for local runs and tests: ../shared/data when it is there (see README, "Data").
DATA   ?= $(if $(EDGERUN_DATA_DIR),$(EDGERUN_DATA_DIR),$(wildcard ../shared/data))
OUT    ?= out

.PHONY: demo test lint models clean help

help:
	@echo "make demo    set up .venv and run the main job"
	@echo "make test    set up .venv and run the test suite (what CI runs)"
	@echo "make lint    ruff over the code"
	@echo "make clean   remove .venv and build outputs"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# One stamp per set of extras, redone when pyproject.toml changes.
$(VENV)/.runtime-$(EXTRA): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(EXTRA)]"
	touch $@

$(VENV)/.all-$(EXTRA): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(EXTRA),train,dev]"
	touch $@ $(VENV)/.runtime-$(EXTRA)

demo: $(VENV)/.all-$(EXTRA)
	$(BIN)/edgerun train mnist_cnn $(if $(DATA),--data-dir $(DATA)/mnist) --out $(OUT)/demo

test: $(VENV)/.all-$(EXTRA)
	$(BIN)/python -m pytest tests

lint: $(VENV)/.all-$(EXTRA)
	$(BIN)/ruff check train export runtime bench tests

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info .pytest_cache
