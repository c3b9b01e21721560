# The two commands of the README are `make run` and `make test`; everything else
# they need is installed here, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# gcc and python3-dev build the native media pump (src/ivrcast/rtp/_pump.c) at install.
DEBIAN_PACKAGES := sip-tester baresip-core php-cli php-curl chromium postgresql espeak-ng gcc python3-dev
PYTEST_ARGS ?=
# Each is a module `conftest` to mypy, so each is checked in a run of its own.
SUBFOLDER_CONFTESTS := $(wildcard tests/*/conftest.py tests/*/*/conftest.py)

.PHONY: install run test lint bench clean

install: $(STAMP)

# The editable install builds the pump in place: a changed source is rebuilt by reinstalling.
$(STAMP): pyproject.toml src/ivrcast/rtp/_pump.c
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

run: install
	$(BIN)/ivrcast serve --demo-account

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	@for conftest in $(SUBFOLDER_CONFTESTS); do $(BIN)/mypy $$conftest || exit 1; done
	$(BIN)/lint-imports

# The browser tests run in a pytest process of their own: Playwright's sync API keeps an
# event loop in the main thread, which asyncio tests cannot share.
test: lint
	$(BIN)/pytest --ignore=tests/browser $(PYTEST_ARGS)
	$(BIN)/pytest tests/browser $(PYTEST_ARGS)

BENCHMARKS := number_parsing ingest engine media_pump dialer claims callbacks export fleet

bench: install
	@for b in $(BENCHMARKS); do \
	  if [ -f bench/$$b.py ]; then echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; fi; \
	done

clean:
	rm -rf $(VENV) var test-artifacts build src/ivrcast/rtp/_pump*.so
