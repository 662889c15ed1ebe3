# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Main job options (override on the command line: `make run CORPUS=../shared/data/cbs_graduate_programs.csv`).
CORPUS ?=
WORKDIR ?= runs/default
PORT ?= 8000
HOST ?= 127.0.0.1
# Training runs a step count planned from the corpus (same corpus, same model on any machine).
# TRAIN_STEPS overrides it; TRAIN_MINUTES adds an optional time cap (warns when it cuts training short).
TRAIN_STEPS ?=
TRAIN_MINUTES ?=
# RERANKER=1 also trains the site's cross-encoder reranker (off: it did not beat the fused order on the two
# real sites, docs/rerank.md); RERANK_WEIGHT=1 serves with it.
RERANKER ?=
RERANK_WEIGHT ?=

.PHONY: run test lint typecheck clean install browser lock audit

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Every dependency comes from requirements.lock, pinned with hashes (pyproject.toml keeps the ranges that
# library users install from); the project itself is then installed without resolving again.
LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# Re-pin requirements.lock after a change to pyproject.toml's dependencies (needs the package index).
lock: | $(BIN)/python
	$(BIN)/python -m pip install -q pip-tools
	$(BIN)/pip-compile --quiet --extra test --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml

# Known vulnerabilities in the locked versions (asks the PyPI advisory service: needs the network).
audit: | $(BIN)/python
	$(BIN)/python -m pip install -q pip-audit
	$(BIN)/pip-audit --requirement $(LOCK) --require-hashes --disable-pip --progress-spinner off

run: $(STAMP)
	$(BIN)/python -m sitetune.cli.main run --workdir $(WORKDIR) --host $(HOST) --port $(PORT) \
		$(if $(TRAIN_STEPS),--train-steps $(TRAIN_STEPS),) $(if $(TRAIN_MINUTES),--train-minutes $(TRAIN_MINUTES),) \
		$(if $(CORPUS),--corpus $(CORPUS),) $(if $(RERANKER),--reranker,) \
		$(if $(RERANK_WEIGHT),--rerank-weight $(RERANK_WEIGHT),)

# Chromium drives the web-page test; Debian's package, installed when missing (needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium not found: install Debian's chromium package for the browser test"; fi; }

# pytest's exit 5 (no test collected) is a failure, not a pass.
test: $(STAMP) browser
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache
