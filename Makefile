# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   - create .venv, install mer, run the demo sweep (synthetic data, local Ray, W&B offline)
#   make test   - create .venv, install mer with dev extras, run the test suite
# Then `source .venv/bin/activate` once per shell: `mer ...` and `python run_sweep.py ...` work.
#
# PyTorch: a torch already importable in .venv is kept. Otherwise the build follows the machine:
# Linux without an NVIDIA driver (no `nvidia-smi` on PATH and no /proc/driver/nvidia) gets the CPU
# wheels of PyTorch's CPU index (PyPI's Linux wheels bundle several GB of CUDA libraries); a machine
# with a driver, or macOS/Windows, gets PyPI's build (CUDA on Linux). The CPU index is an *extra*
# index (torch's dependencies still come from PyPI); where it cannot be reached (a mirror-only
# network) the same torch version comes from the configured indexes instead, and make says so.
# Override: make demo NVIDIA_DRIVER=yes (force CUDA), NVIDIA_DRIVER= (force CPU), or the whole
# requirement, e.g. make demo TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
# `make torch-info` prints the choice.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
NVIDIA_DRIVER ?= $(shell (command -v nvidia-smi || ls -d /proc/driver/nvidia) >/dev/null 2>&1 && echo yes)
ifeq ($(shell uname -s)-$(NVIDIA_DRIVER),Linux-)
TORCH ?= torch==$(TORCH_VERSION) --extra-index-url $(TORCH_CPU_INDEX)
TORCH_BUILD = CPU wheels (Linux, no NVIDIA driver found)
TORCH_PROBE = $(TORCH_CPU_INDEX)/torch/
else
TORCH ?= torch==$(TORCH_VERSION)
TORCH_BUILD = PyPI's build (NVIDIA driver: $(or $(NVIDIA_DRIVER),none); $(shell uname -s))
endif
TORCH_CHOICE = $(if $(filter command% environment%,$(origin TORCH)),as set by TORCH,$(TORCH_BUILD))
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test venv lint clean-results torch-info

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if $(PY) -c "import torch" 2>/dev/null; then echo "PyTorch: keeping the torch installed in $(VENV)"; \
	elif [ -n "$(TORCH_PROBE)" ] && [ "$(origin TORCH)" = file ] && ! $(PY) -c "import urllib.request as u; u.urlopen('$(TORCH_PROBE)', timeout=10)" 2>/dev/null; then \
	  echo "PyTorch: $(TORCH_CPU_INDEX) cannot be reached: torch==$(TORCH_VERSION) from the configured package index"; \
	  $(PIP) install -q torch==$(TORCH_VERSION); \
	else echo "PyTorch: $(TORCH_CHOICE): pip install $(TORCH)"; $(PIP) install -q $(TORCH); fi
	$(PIP) install -q -e ".[dev]"
	touch $@
	@echo "ready: run 'source $(VENV)/bin/activate' once per shell, then mer ... / python run_sweep.py ..."

venv: $(VENV)/.installed

torch-info:
	@echo "PyTorch for this machine: $(TORCH_CHOICE)"
	@echo "install command: pip install $(TORCH)"

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
