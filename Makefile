# One command to set up and run the main job, one to set up and run the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: setup system-deps demo lint test test-slow schemas clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# The pinned CPU wheel of torch first: a bare `torch` requirement would pull a CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e '.[dev,deploy,tracking]'
	touch $@

# graphviz (the dot program) for renders; Debian's FashionMNIST files for real-data runs.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && { ! command -v dot >/dev/null 2>&1 || [ ! -d /usr/share/datasets/fashion-mnist ]; }; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq graphviz dataset-fashion-mnist >/dev/null \
	  || echo "warning: could not install graphviz / dataset-fashion-mnist with apt-get"; \
	fi

setup: system-deps $(VENV)/.installed

demo: setup
	$(BIN)/nasgal compile darts_v2 --cells 5 --channels 16 --in-channels 1 --input-size 28
	$(BIN)/nasgal run examples/fashion_mnist_quick.toml

lint: setup
	$(BIN)/ruff check nasgal tests benchmarks
	$(BIN)/mypy nasgal/spec nasgal/compiler

# -n auto: one test process per core (tests/conftest.py gives each one torch thread); worksteal
# lets an idle process take queued tests from a busy one, so a slow file does not leave a core idle.
test: setup lint
	$(BIN)/python -m pytest -q -n auto --dist worksteal

test-slow: setup
	$(BIN)/python -m pytest -q -n auto -m slow

schemas: setup
	$(BIN)/nasgal schema

clean:
	rm -rf $(VENV) build *.egg-info
