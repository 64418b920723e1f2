# The README's two commands. Each creates .venv when missing, installs everything
# pinned (PETSc and petsc4py included), then tests or benchmarks.
#
#   make test     the whole test suite (CI runs this with HYPOTHESIS_PROFILE=ci)
#   make bench    the default benchmark suite (numlib-bench), results in bench-results/
#
# petsc4py is compiled against Debian's PETSc (petsc-dev, 3.18) and mpi4py against
# its OpenMPI (mpicc): ~3 minutes each once, then pip's wheel cache makes later
# installs fast. Point PETSC_DIR elsewhere to use another PETSc 3.18 build.

PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip --disable-pip-version-check
PETSC_DIR  ?= /usr/lib/petsc
STAMP      := $(VENV)/.installed
# Only for compiling petsc4py 3.18 (newer setuptools and Cython 3 break its build).
BUILD_PINS := numpy==2.4.6 cython==0.29.37 setuptools==69.5.1 wheel==0.45.1

PYTEST_ARGS ?=
BENCH_ARGS  ?=

.PHONY: test bench lint setup clean

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/numlib-bench $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "numlib needs Python >= 3.11; set PYTHON=/path/to/python3.11"; exit 1; }
	@test -f $(PETSC_DIR)/include/petsc.h || $(MAKE) --no-print-directory petsc-system
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(BUILD_PINS)
	PETSC_DIR=$(PETSC_DIR) $(PIP) install -q --no-build-isolation petsc4py==3.18.5
	MPICC=mpicc $(PIP) install -q --no-binary mpi4py mpi4py==4.1.2
	$(PIP) install -q -e '.[dev,petsc,compress]'
	$(PY) -c "import numlib, solvers, validation; from petsc4py import PETSc; from mpi4py import MPI"
	touch $(STAMP)

.PHONY: petsc-system
petsc-system:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Debian's petsc-dev (PETSc 3.18 with MPI) ..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq petsc-dev; \
	else \
	  echo "PETSc not found at PETSC_DIR=$(PETSC_DIR)."; \
	  echo "Install it with:  sudo apt-get install petsc-dev   (Debian/Ubuntu)"; \
	  echo "or point PETSC_DIR at a PETSc 3.18 installation and run make again."; \
	  exit 1; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info bench-results .pytest_cache .hypothesis
