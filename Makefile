# hwbp: `make demo` and `make test` each set up everything on a fresh machine
# (virtual environment, pinned packages) and are quick the second time.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test test-fast bench examples clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing hwbp and its pinned dependencies into $(VENV) ..."
	@$(PIP) install -c constraints.txt -e '.[test]'
	@# torch is optional (oracle and import cross-checks); take only a locally available build
	@if $(PIP) install --no-index --no-deps -c constraints.txt torch==2.13.0 >/dev/null 2>&1; then \
	    $(PIP) install -c constraints.txt torch==2.13.0; \
	else echo "note: torch==2.13.0 is not available locally; torch cross-checks will be skipped"; fi
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/hwbp demo

test: $(STAMP)
	@$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	@$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	@$(BIN)/python benchmarks/bench_core.py

examples: $(STAMP)
	@$(BIN)/python examples/make_mlp_digits.py

clean:
	rm -rf $(VENV) out .pytest_cache
