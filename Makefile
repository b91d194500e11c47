# Two commands on a fresh machine: `make run` and `make test`. Both set everything up first.
# Needs Python >= 3.11, CMake and a C/C++ toolchain: the first setup builds llama.cpp's
# llama-server from the pinned source (minutes on 2 cores; cached per machine afterwards).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup run test test-busy lab lint typecheck bench clean

setup: $(STAMP)

# --no-compile: pip would byte-compile every installed file (~40 s on 2 cores); Python compiles
# the modules a run imports on first use instead.
# llama-server's build needs only the standard library, the venv's pip (to fetch its sdist) and
# cmake, so it runs beside the dependencies' install: compiling beside mostly downloading. If
# either fails, or on Ctrl-C, the other is stopped and the recipe fails.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@PYTHONPATH="$(CURDIR)" $(PY) -m workbench.serve.llama_build >/dev/null & build=$$!; \
	trap 'kill $$build 2>/dev/null' INT TERM; \
	echo "installing the dependencies beside the llama-server build (pid $$build)"; \
	$(PY) -m pip install --quiet --no-compile -e '.[dev,ray]' || { kill $$build 2>/dev/null; wait $$build; exit 1; }; \
	wait $$build
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## run: serve the two embedded models and run every experiment; prints the run folder
run: setup
	$(VENV)/bin/workbench run

## test: unit, integration (real local models) and notebook tests, then the notebooks as committed (nbval)
test: setup
	$(PY) -m pytest --durations=15
	$(PY) -m pytest --nbval-lax --nbval-current-env notebooks/

## test-busy: `make test` beside a CPU hog (HOGS_PER_CORE busy processes per core, default 1), as on
## a shared laptop or CI runner; the hog is killed however the tests end
HOGS_PER_CORE ?= 1
test-busy: setup
	@n=$$(( $$(nproc) * $(HOGS_PER_CORE) )); pids=""; \
	trap 'kill $$pids 2>/dev/null; wait $$pids 2>/dev/null' EXIT INT TERM; \
	for i in $$(seq $$n); do $(PYTHON) -c 'while True: pass' & pids="$$pids $$!"; done; \
	echo "test-busy: $$n busy processes beside the tests (pids$$pids)"; \
	$(MAKE) --no-print-directory test

## lab: JupyterLab on the notebooks
lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

lint: setup
	$(VENV)/bin/ruff check workbench tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info
