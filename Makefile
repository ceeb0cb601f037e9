# metaloss: `make demo` and `make test` set everything up themselves (Python 3.11, CPU).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DATA   ?= ../shared/datasets
export METALOSS_DATA_DIR ?= $(abspath $(DATA))

.PHONY: demo test lint format bench clean install

$(VENV)/.torch:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(PIP) install -q -e ".[test,ray,rl]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/metaloss demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check metaloss tests bench
	$(VENV)/bin/ruff format --check metaloss tests bench

format: $(VENV)/.installed
	$(VENV)/bin/ruff format metaloss tests bench
	$(VENV)/bin/ruff check --fix metaloss tests bench

test: lint
	$(PY) -m pytest -q --durations=15 --doctest-modules metaloss tests

bench: $(VENV)/.installed
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
