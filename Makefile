# The two commands of the README. Each one sets up what it needs on a fresh
# Debian / Raspberry Pi OS machine that has python3, then runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

# GPIO_VM=0 leaves the real-GPIO VM out of `make test` (.ci/run: once, not per Python)
GPIO_VM ?= 1

.PHONY: demo test test-quick test-gpio test-gpio-arm64 lint bench install tools clean

demo: $(VENV)/.installed
	$(BIN)/homecare-agent demo

test: $(VENV)/.installed-test tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ "$(GPIO_VM)" = 1 ]; then $(MAKE) --no-print-directory test-gpio; fi

# The whole agent on a real Linux GPIO chip (gpio-sim) in a qemu guest; the guest
# image is cached outside the clone (docs/development.md).
test-gpio: $(VENV)/.installed-test
	@bash tests/gpio_vm/make-test.sh x86_64 $(BIN)/python

test-gpio-arm64: $(VENV)/.installed-test
	@bash tests/gpio_vm/make-test.sh aarch64 $(BIN)/python

test-quick: $(VENV)/.installed-test tools
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/python -m mypy

bench: $(VENV)/.installed-test tools
	$(BIN)/python -m bench

# --- set-up -----------------------------------------------------------------
$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    rm -rf $(VENV); apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: run 'sudo apt-get install python3-venv', then make again" >&2; exit 1; fi; }
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

$(VENV)/.installed: $(VENV)/bin/python setup.py pyproject.toml
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/bin/python setup.py pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

# The tests start their own mosquitto (and RabbitMQ, node for the interop tests).
tools:
	@bash .ci/ensure-tools

# On a Raspberry Pi, as root: the service, its user, /opt venv, /etc config, device key.
install:
	bash scripts/install.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
