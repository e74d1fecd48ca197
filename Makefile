# Glas: `make demo` and `make test` work from a fresh clone with only Python ≥ 3.11 and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench eval train constraints clean

setup: $(STAMP)

# The versions of every dependency are pinned in constraints.txt (tests compare against
# shipped models and real data: a new numpy or scikit-learn must not change them unseen).
# The modules mypyc compiles (pyproject.toml, [tool.glas]): a change to one rebuilds them.
COMPILED := $(shell sed -n '/^compiled = \[/,/^\]/s/^ *"\(.*\)",*$$/\1/p' pyproject.toml)

$(STAMP): setup.cfg setup.py pyproject.toml constraints.txt $(COMPILED)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Glas needs Python >= 3.11: run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,browse,cluster]'
	@ls flagging/rules.cpython-*.so >/dev/null 2>&1 || echo "make setup: the hot modules were not compiled (no C compiler?): Glas runs them as Python, ~11 % slower"
	@touch $(STAMP)

# Refresh constraints.txt: the newest versions setup.cfg allows, installed into a fresh
# temporary venv and frozen (after changing install_requires, or to move to new releases;
# then run make test).
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet -e '.[dev,browse,cluster]'
	{ echo "# Versions 'make setup' installs (pip -c). Regenerate with: make constraints"; \
	  .venv-constraints/bin/python -m pip freeze --exclude-editable --exclude glas; } > constraints.txt
	rm -rf .venv-constraints

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The tests start their own PostgreSQL server: tests/ensure-postgres.sh installs its programs
# when the machine lacks them; tests/ensure-chromium.sh installs the headless browser the
# report's test opens. pytest exits 5 when it collects no test: say so instead.
test: $(STAMP)
	@sh tests/ensure-postgres.sh
	@sh tests/ensure-chromium.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS) || { s=$$?; if [ $$s -eq 5 ]; then echo "pytest: no tests were collected"; else exit $$s; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check crawler spiders dedupe storage flagging bench tests examples

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/collectors.py
	$(BIN)/python bench/flagging.py
	$(BIN)/python bench/dedupe.py
	$(BIN)/python bench/storage.py
	$(BIN)/python bench/harvest.py
	$(BIN)/python bench/report.py
	$(BIN)/python bench/cluster_engines.py
	$(BIN)/python bench/cluster.py

# Quality of complaint/topic/place flagging on the real data (../shared/data) and the
# hand-labelled VK comments (tests/data/vk_comment_labels.csv); prints figures.
eval: $(STAMP)
	$(BIN)/python bench/eval_flagging.py

# Fit flagging's topic model on ../shared/data/appeals and its comment model on the VK
# development labels (read in place; deterministic, ~2 min on one core, scikit-learn from the
# dev extra); writes flagging/model/topics.{npz,json} and comments.{npz,json}.
# `--check` on either script refits and compares with the shipped file.
train: $(STAMP)
	$(BIN)/python bench/train_flagging.py
	$(BIN)/python bench/train_comments.py

clean:
	rm -rf $(VENV) .venv-constraints demo build *.egg-info .pytest_cache .ruff_cache
