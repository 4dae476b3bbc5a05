# The two commands of the README: `make repro` and `make test`.
# Both create the virtual environment in .venv on first use and reuse it after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv repro test plots bench

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

# The numerics tests once more under other numpy (OpenBLAS) and torch (ATen, oneDNN) kernels, as another CPU picks.
ALT_KERNELS := OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q tests
	$(ALT_KERNELS) $(BIN)/python -m pytest -n 2 --dist loadfile -q -m numerics tests

plots: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m nnlab.plots_page

# `make bench BENCH_ARGS=--repro` also times a whole default `dvc repro` from a clean cache.
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)
