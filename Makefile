# The two commands of the README: `make repro` and `make test`.
# Both create the virtual environment in .venv on first use and reuse it after.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The offline page template that .dvc/config's plots.html_template names
# (nnlab/plots_page.py; tests/test_plots_page.py checks that the two agree).
PLOTS_TEMPLATE := .dvc/plots_template.html

.PHONY: venv repro real test bench mutate

venv: $(STAMP) $(PLOTS_TEMPLATE)

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(PLOTS_TEMPLATE): $(STAMP) nnlab/plots_page.py nnlab/vega_templates.py
	$(BIN)/python -m nnlab.plots_page

repro: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

# The whole pipeline on the three real datasets at once, as the DVC experiment `real` (docs/real-data.md):
#   make real MNIST_IDX=/path/to/mnist IMDB=/path/to/aclImdb_v1.tar.gz MRI='/path/to/Alzheimer_s Dataset'
# MNIST_IDX: the folder of the four IDX files; IMDB: the aclImdb tarball or folder (IMDB_SOURCE=csv: a
# review,sentiment CSV); MRI: the Kaggle folder holding train/ and test/. THREADS: torch's threads per
# stage (train.threads; 1 gives the same bytes on any machine, 2 cut the four MRI models on the real
# slices from about 70 to 44 minutes on 2 cores: docs/real-data.md).
IMDB_SOURCE ?= aclimdb
THREADS ?= 1
real: venv
	@test -n "$(MNIST_IDX)" -a -n "$(IMDB)" -a -n "$(MRI)" || \
		{ echo "error: make real needs MNIST_IDX=<folder> IMDB=<tarball, folder or CSV> MRI=<folder>" >&2; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc exp run -n real -S data.mnist.source=idx -S "data.mnist.idx_dir=$(MNIST_IDX)" \
		-S data.imdb.source=$(IMDB_SOURCE) -S "data.imdb.path=$(IMDB)" \
		-S data.mri.source=folder -S "data.mri.folder.path=$(MRI)" -S train.threads=$(THREADS)

# Whole files to each worker, in the order tests/conftest.py sorts them (see there).
test: venv
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q -rs tests

# Mutation testing of the core of nnlab/ with mutmut (setup.cfg: which files, which tests; CONTRIBUTING.md:
# its time and score). Not part of `make test`. Survivors: `$(BIN)/mutmut results`, `$(BIN)/mutmut show NAME`.
DEV_STAMP := $(VENV)/.installed-dev
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

mutate: venv $(DEV_STAMP)
	nice -n 10 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# `make bench BENCH_ARGS=--repro` also times a whole default `dvc repro` from a clean cache.
bench: venv
	$(BIN)/python -m bench.run $(BENCH_ARGS)
