# Everything a fresh machine with python3 and make needs: `make run`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test lint check bench profile bench-topology schemas constraints clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: install
	$(BIN)/cdshooks serve --host $(HOST) --port $(PORT) --workers 2

test: install
	$(BIN)/cdshooks check
	$(BIN)/python -m pytest

# Style and architecture: ruff (rules and line length in pyproject.toml) and the import-linter
# layers contract (pyproject.toml, drawn in ARCHITECTURE.md). .ci/run runs it after the suite.
lint: install
	$(BIN)/ruff check src tests bench deploy
	$(BIN)/lint-imports

check: install
	$(BIN)/cdshooks check

bench: install
	$(BIN)/python bench/run.py $(if $(QUICK),--quick) $(if $(BASELINE),--baseline $(BASELINE))

# Where a live worker's CPU goes, stage by stage (py-spy, installed into the venv on first use);
# every shape into bench/STAGES.md, or SHAPE=none|one|every printed only.
profile: install
	$(BIN)/python -m pip install --quiet py-spy
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python bench/stages.py --floor $(if $(SHAPE),--shape $(SHAPE),--write)

bench-topology: install
	$(BIN)/python bench/topology.py

schemas: install
	$(BIN)/cdshooks schemas

# The exact runtime versions the Docker image installs: a clean venv with the package only, frozen.
constraints:
	rm -rf .constraints-venv
	$(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/python -m pip install --quiet --upgrade pip
	.constraints-venv/bin/python -m pip install --quiet .
	{ echo "# Runtime pins for the Docker image: regenerate with 'make constraints' after changing dependencies."; \
	  .constraints-venv/bin/python -m pip freeze --exclude cdshooks; } > constraints.txt
	rm -rf .constraints-venv

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis
