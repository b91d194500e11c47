# Two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
# Needs Python >= 3.11, CMake and a C/C++ toolchain: the first setup builds llama.cpp's
# llama-server from the pinned source (minutes on 2 cores; cached per machine afterwards).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup run test lab lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(VENV)/bin/workbench build-server >/dev/null
	touch $(STAMP)

## run: serve the two embedded models and run every experiment; prints the run folder
run: setup
	$(VENV)/bin/workbench run

## test: unit, integration (real local models) and notebook tests, then the notebooks as committed (nbval)
test: setup
	$(PY) -m pytest
	$(PY) -m pytest --nbval-lax --nbval-current-env notebooks/

## lab: JupyterLab on the notebooks
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

lint: setup
	$(VENV)/bin/ruff check workbench tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info
