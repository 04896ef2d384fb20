# One command to set up and run the main job, one to set up and run the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0

.PHONY: setup system-deps demo voice-demo lint test test-slow schemas clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# The pinned CPU wheel of torch first: a bare `torch` requirement would pull a CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e '.[dev,deploy,tracking]'
	touch $@

# graphviz (the dot program) for renders; Debian's FashionMNIST files for real-data runs;
# espeak-ng to synthesise the small speech set of the voice preset (examples/voiceprint_quick.toml).
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && { ! command -v dot >/dev/null 2>&1 || [ ! -d /usr/share/datasets/fashion-mnist ] || ! command -v espeak-ng >/dev/null 2>&1; }; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq graphviz dataset-fashion-mnist espeak-ng >/dev/null \
	  || echo "warning: could not install graphviz / dataset-fashion-mnist / espeak-ng with apt-get"; \
	fi

setup: system-deps $(VENV)/.installed

# The voice preset: synthesise 10 espeak-ng speakers, prepare 48x48 spectrograms, run the experiment.
voice-demo: setup
	$(BIN)/nasgal datasets espeak data/espeak --speakers 10 --utterances 40
	$(BIN)/nasgal datasets prepare voice data/espeak --out data/espeak_voice48 --size 48
	$(BIN)/nasgal run examples/voiceprint_quick.toml

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
