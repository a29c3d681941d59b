# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   - create .venv, install mer, run the demo sweep (synthetic data, local Ray, W&B offline)
#   make test   - create .venv, install mer with dev extras, run the test suite
# TORCH picks the PyTorch build: the default takes PyPI's build for this machine (CUDA on Linux);
# CI installs the CPU build first. Example: make demo TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test venv lint clean-results

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# --resume: a second `make demo` shows the finished results (or continues an interrupted run)
# instead of refusing an existing results folder; `make clean-results` starts over.
demo: venv
	$(PY) run_sweep.py sweeps/demo.yaml --resume

test: venv
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check mer tests bench run_sweep.py
	$(VENV)/bin/ruff format --check mer tests bench run_sweep.py

clean-results:
	rm -rf results/demo
