# The README's two commands: `make demo` and `make test`. Everything a fresh machine needs is set up here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 7860

.PHONY: demo test install models lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install whenever pyproject.toml changes. torch goes first and alone so the CPU wheel is used.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,train,postgres]"
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/arena models build

demo: install
	$(BIN)/arena demo --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .cache build *.egg-info
