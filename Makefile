# The two commands of the README: `make repro` and `make test`.
# Both create the virtual environment in .venv on first use and reuse it after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The offline page template that .dvc/config's plots.html_template names
# (nnlab/plots_page.py; tests/test_plots_page.py checks that the two agree).
PLOTS_TEMPLATE := .dvc/plots_template.html

.PHONY: venv repro test bench

venv: $(STAMP) $(PLOTS_TEMPLATE)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(PLOTS_TEMPLATE): $(STAMP) nnlab/plots_page.py
	$(BIN)/python -m nnlab.plots_page

repro: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

# The numerics tests once more under other numpy (OpenBLAS) and torch (ATen, oneDNN) kernels, as another CPU picks.
ALT_KERNELS := OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadfile -q tests
	$(ALT_KERNELS) $(BIN)/python -m pytest -n 2 --dist loadfile -q -m numerics tests

# `make bench BENCH_ARGS=--repro` also times a whole default `dvc repro` from a clean cache.
bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)
